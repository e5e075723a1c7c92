#!/usr/bin/env bash
# Local stand-ins for the Dockerfile's two base images, for tests/container.rs on machines
# that cannot pull `rust:1.95-trixie` or `gcr.io/distroless/cc-debian13`:
#
#   builder  a debootstrapped Debian trixie (minbase + gcc, libc6-dev, make, ca-certificates)
#            with this machine's Rust toolchain (rustc and cargo) copied in, on PATH like
#            the official image (/usr/local/cargo/bin);
#   runtime  an empty root holding only what distroless `cc` holds, taken from the same
#            trixie tree (so the glibc the binary links against is the one it runs on):
#            glibc, libgcc, libstdc++, libgomp, libssl, CA certificates, tzdata, netbase,
#            os-release, distroless's /etc/passwd (root, nobody, nonroot 65532) and
#            /etc/group, /tmp; no shell, no package manager.
#
# Usage: tests/container-stand-ins.sh BUILDAH_ROOT BUILDAH_RUNROOT
# Imports both into that buildah storage (vfs driver) and prints their names, one a line:
#   localhost/mm-edge-test-builder:KEY
#   localhost/mm-edge-test-runtime:KEY
#
# The two root filesystems are cached as tar files under
# ${MM_EDGE_CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mm-edge/container}/KEY, where KEY
# hashes this script, the Debian suite and mirror, and the toolchain's version; a run with
# another key removes the older entries. MM_EDGE_TEST_TOOLCHAIN names the toolchain to copy
# (a rustup toolchain directory; default: `rustc --print sysroot`).
# Needs root, debootstrap, buildah, tar, flock.
set -euo pipefail

root=${1:?usage: $0 BUILDAH_ROOT BUILDAH_RUNROOT}
runroot=${2:?usage: $0 BUILDAH_ROOT BUILDAH_RUNROOT}
suite=trixie
mirror=${MM_EDGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
toolchain=${MM_EDGE_TEST_TOOLCHAIN:-$(rustc --print sysroot)}
toolchain=$(readlink -f "$toolchain")
cache_base=${MM_EDGE_CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mm-edge/container}

log() { echo "stand-ins: $*" >&2; }
bah() { buildah --root "$root" --runroot "$runroot" --storage-driver vfs "$@"; }

for f in bin/rustc bin/cargo lib/rustlib; do
    [[ -e $toolchain/$f ]] || { log "$toolchain is not a rustup toolchain (no $f)"; exit 1; }
done
# This machine's own CAs (a TLS-inspecting egress proxy's, say), trusted in the builder.
shopt -s nullglob
local_cas=(/usr/local/share/ca-certificates/*.crt)
shopt -u nullglob
rust_version=$("$toolchain/bin/rustc" -vV)
cargo_version=$("$toolchain/bin/cargo" -V)
key=$({
    cat "$0" "${local_cas[@]}"
    printf '%s\n' "$suite" "$mirror" "$rust_version" "$cargo_version"
} | sha256sum | cut -c1-16)
cache=$cache_base/$key
mkdir -p "$cache_base"

# One maker at a time per cache; the others wait and then find the tar files made.
exec 9>"$cache_base/lock"
flock 9

# The package files copied into the runtime root (directories, docs and manuals left out).
runtime_packages=(libc6 libgcc-s1 libgomp1 libstdc++6 libssl3t64 tzdata netbase base-files)

make_trees() {
    local work=$1 tree=$work/trixie rt=$work/runtime
    log "debootstrap $suite from $mirror (a few minutes)"
    local script=/usr/share/debootstrap/scripts/$suite
    [[ -e $script ]] || script=/usr/share/debootstrap/scripts/sid
    debootstrap --variant=minbase \
        --include=gcc,libc6-dev,make,ca-certificates,tzdata,netbase \
        "$suite" "$tree" "$mirror" "$script" >"$work/debootstrap.log" 2>&1 || {
        tail -n 30 "$work/debootstrap.log" >&2
        return 1
    }

    log "runtime: ${runtime_packages[*]}"
    mkdir -p "$rt"
    # The merged-/usr links (bin -> usr/bin, ...), so the files land where trixie has them.
    for link in bin sbin lib lib64; do
        if [[ -L $tree/$link ]]; then cp -a "$tree/$link" "$rt/"; fi
    done
    local pkg list candidate
    for pkg in "${runtime_packages[@]}"; do
        list=
        for candidate in "$tree/var/lib/dpkg/info/$pkg.list" "$tree/var/lib/dpkg/info/$pkg:amd64.list"; do
            if [[ -f $candidate ]]; then list=$candidate; fi
        done
        [[ -n $list ]] || { log "package $pkg is not in the tree"; return 1; }
        while IFS= read -r path; do
            case $path in
            /usr/share/doc/* | /usr/share/man/* | /usr/share/info/* | /usr/share/lintian/*) continue ;;
            esac
            if [[ -L $tree$path || ! -d $tree$path ]] && [[ -e $tree$path || -L $tree$path ]]; then
                printf '%s\n' "${path#/}"
            fi
        done <"$list"
    done | tar -C "$tree" --no-recursion -cf - -T - | tar -C "$rt" -xpf -
    # The generated bundle, which no package lists.
    tar -C "$tree" -cf - etc/ssl/certs | tar -C "$rt" -xpf -
    # distroless's users and groups: uid 2000 is not among them, as in the real image.
    cat >"$rt/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
    cat >"$rt/etc/group" <<'EOF'
root:x:0:
tty:x:5:
staff:x:50:
nonroot:x:65532:
nobody:x:65534:
EOF
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rt/etc/nsswitch.conf"
    install -d -m 1777 "$rt/tmp"
    install -d -m 0700 "$rt/root"
    install -d -m 0700 -o 65532 -g 65532 "$rt/home/nonroot"
    for sh in bin/sh bin/bash bin/dash usr/bin/sh usr/bin/bash usr/bin/dash; do
        if [[ -e $rt/$sh ]]; then log "runtime root has a shell: $sh"; return 1; fi
    done

    log "builder: toolchain from $toolchain ($(head -n1 <<<"$rust_version"))"
    local dest=$tree/usr/local/rust
    mkdir -p "$dest/bin" "$tree/usr/local/cargo/bin"
    cp -a "$toolchain/lib" "$dest/"
    [[ -d $toolchain/libexec ]] && cp -a "$toolchain/libexec" "$dest/"
    cp -a "$toolchain/bin/rustc" "$toolchain/bin/cargo" "$dest/bin/"
    ln -s ../../rust/bin/rustc "$tree/usr/local/cargo/bin/rustc"
    ln -s ../../rust/bin/cargo "$tree/usr/local/cargo/bin/cargo"
    # The machine's own CAs, so that cargo in the builder reaches crates.io wherever the
    # host does; the runtime root above keeps Debian's bundle only.
    if ((${#local_cas[@]})); then
        cp "${local_cas[@]}" "$tree/usr/local/share/ca-certificates/"
        chroot "$tree" update-ca-certificates >/dev/null 2>&1
    fi
    rm -rf "$tree"/var/cache/apt/archives/*.deb "$tree"/var/lib/apt/lists/*

    tar -C "$tree" -cf "$work/builder.tar" .
    tar -C "$rt" -cf "$work/runtime.tar" .
}

if [[ ! -f $cache/builder.tar || ! -f $cache/runtime.tar ]]; then
    log "no cached stand-ins for key $key: making them"
    find "$cache_base" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
    work=$cache.tmp
    rm -rf "$work"
    mkdir -p "$work"
    make_trees "$work"
    mkdir -p "$cache"
    mv "$work/builder.tar" "$work/runtime.tar" "$cache/"
    rm -rf "$work"
else
    log "cached stand-ins for key $key in $cache"
fi

# Import: an empty container, the tree unpacked into its root, the image config, commit.
import() {
    local name=$1 tar=$2
    shift 2
    local ctr mnt
    ctr=$(bah from scratch)
    mnt=$(bah mount "$ctr")
    tar -C "$mnt" -xpf "$tar"
    bah umount "$ctr" >/dev/null
    bah config "$@" "$ctr"
    bah commit --quiet --format docker "$ctr" "$name" >/dev/null
    bah rm "$ctr" >/dev/null
    echo "$name"
}

system_path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
import "localhost/mm-edge-test-builder:$key" "$cache/builder.tar" \
    --env "PATH=/usr/local/cargo/bin:$system_path" --env CARGO_HOME=/usr/local/cargo \
    --cmd bash
# distroless `cc` (the root-user tag): PATH, SSL_CERT_FILE, no entrypoint or command.
import "localhost/mm-edge-test-runtime:$key" "$cache/runtime.tar" \
    --env "PATH=$system_path" --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --user 0 --workingdir /
