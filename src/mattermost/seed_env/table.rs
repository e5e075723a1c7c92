//! Every variable of the old image and how mm-edge handles it, in the order of
//! `seed-env-map.tsv`.

use super::*;

/// Every variable documented or read by the old image, in the order of `seed-env-map.tsv`.
pub const OLD_VARS: &[OldVar] = &[
    var("DEBUG", Handling::Silent),
    var("MATTERMOST_NAME", Handling::Derived),
    var("MATTERMOST_SITE_URL", Handling::Edge),
    var(
        "MATTERMOST_WEBSERVER_MODE",
        key(SVC, "WebserverMode", Ty::OneOf(&["gzip", "uncompressed", "disabled"])),
    ),
    var(
        "MATTERMOST_PORT",
        Handling::Ignored(
            "the old image ignored it since 2016 (Mattermost always listened on :80 inside it); \
             Mattermost's listen address must match mm-edge's upstream, so mm-edge leaves \
             ServiceSettings.ListenAddress alone (set MM_SERVICESETTINGS_LISTENADDRESS on the \
             Mattermost container if you really need another port)",
        ),
    ),
    var("MATTERMOST_HOST", Handling::Edge),
    var(
        "MATTERMOST_SCHEME",
        Handling::Ignored(
            "the old image never used it; the scheme is part of the site URL mm-edge writes",
        ),
    ),
    var("MATTERMOST_HTTPS", Handling::Edge),
    var(
        "MATTERMOST_ENABLE_EMAIL_SIGNUP",
        key(EMAIL, "EnableSignUpWithEmail", Ty::Bool),
    ),
    var(
        "MATTERMOST_SECRET_KEY",
        key_note(
            SQL,
            "AtRestEncryptKey",
            Ty::Secret { min_len: MIN_SECRET_LEN },
            "written to SqlSettings.AtRestEncryptKey, a legacy setting: current Mattermost \
             encrypts nothing with it",
        ),
    ),
    var(
        "MATTERMOST_RESET_SALT",
        Handling::Removed(
            "EmailSettings.PasswordResetSalt was removed in Mattermost 3.9 (reset e-mails use tokens)",
        ),
    ),
    var(
        "MATTERMOST_INVITE_SALT",
        Handling::Removed(
            "EmailSettings.InviteSalt was removed in Mattermost 5.10 (invitations use tokens)",
        ),
    ),
    var(
        "MATTERMOST_LINK_SALT",
        key(FILE, "PublicLinkSalt", Ty::Secret { min_len: MIN_SECRET_LEN }),
    ),
    var(
        "MATTERMOST_MAX_LOGIN_ATTEMPTS",
        key(SVC, "MaximumLoginAttempts", Ty::Int { min: 1 }),
    ),
    var(
        "MATTERMOST_SEGMENT_KEY",
        Handling::Removed("ServiceSettings.SegmentDeveloperKey was removed in Mattermost 3.7"),
    ),
    var("MATTERMOST_GOOGLE_KEY", key(SVC, "GoogleDeveloperKey", Ty::Str)),
    var(
        "MATTERMOST_RESTRICT_DIRECT_MESSAGE",
        key(TEAM, "RestrictDirectMessage", Ty::OneOf(&["any", "team"])),
    ),
    var("MATTERMOST_ENABLE_CUSTOM_EMOJI", key(SVC, "EnableCustomEmoji", Ty::Bool)),
    var(
        "MATTERMOST_ENABLE_ADMIN_INTEGRATIONS",
        Handling::Removed(
            "ServiceSettings.EnableOnlyAdminIntegrations became a permission in Mattermost 4.9 and \
             left config.json in 6.0; set the integration permissions in System Console > User \
             Management > Permissions",
        ),
    ),
    var("MATTERMOST_ENABLE_SLASH_COMMANDS", key(SVC, "EnableCommands", Ty::Bool)),
    var(
        "MATTERMOST_ENABLE_INCOMING_WEBHOOKS",
        key(SVC, "EnableIncomingWebhooks", Ty::Bool),
    ),
    var(
        "MATTERMOST_ENABLE_OUTGOING_WEBHOOKS",
        key(SVC, "EnableOutgoingWebhooks", Ty::Bool),
    ),
    var(
        "MATTERMOST_WEBHOOK_OVERRIDE_USERNAME",
        key(SVC, "EnablePostUsernameOverride", Ty::Bool),
    ),
    var(
        "MATTERMOST_WEBHOOK_OVERRIDE_ICON",
        key(SVC, "EnablePostIconOverride", Ty::Bool),
    ),
    var("MATTERMOST_ENABLE_ALERTS", key(SVC, "EnableSecurityFixAlert", Ty::Bool)),
    var(
        "MATTERMOST_ENABLE_INSECURE_CONNECTIONS",
        key(SVC, "EnableInsecureOutgoingConnections", Ty::Bool),
    ),
    var("MATTERMOST_CORS_DOMAINS", Handling::Edge),
    var(
        "MATTERMOST_WEB_SESSION_DAYS",
        key(SVC, "SessionLengthWebInHours", Ty::DaysAsHours),
    ),
    var(
        "MATTERMOST_MOBILE_SESSION_DAYS",
        key(SVC, "SessionLengthMobileInHours", Ty::DaysAsHours),
    ),
    var(
        "MATTERMOST_SSO_SESSION_DAYS",
        key(SVC, "SessionLengthSSOInHours", Ty::DaysAsHours),
    ),
    var(
        "MATTERMOST_SESSION_CACHE",
        key(SVC, "SessionCacheInMinutes", Ty::Int { min: 0 }),
    ),
    var("MATTERMOST_MAX_USERS", key(TEAM, "MaxUsersPerTeam", Ty::Int { min: 1 })),
    var(
        "MATTERMOST_CREATE_TEAMS",
        Handling::Removed(
            "TeamSettings.EnableTeamCreation became the create_team permission in Mattermost 4.9 \
             and left config.json in 6.0; set it in System Console > User Management > Permissions",
        ),
    ),
    var("MATTERMOST_CREATE_USERS", key(TEAM, "EnableUserCreation", Ty::Bool)),
    var("MATTERMOST_OPEN_SERVER", key(TEAM, "EnableOpenServer", Ty::Bool)),
    var(
        "MATTERMOST_USER_DOMAINS",
        key(TEAM, "RestrictCreationToDomains", Ty::Str),
    ),
    var(
        "MATTERMOST_RESTRICT_TEAM_NAMES",
        Handling::Removed("TeamSettings.RestrictTeamNames was removed in Mattermost 3.5"),
    ),
    var(
        "MATTERMOST_TEAM_DIRECTORY",
        Handling::Removed("TeamSettings.EnableTeamListing was removed in Mattermost 3.0"),
    ),
    var("MATTERMOST_EMAIL_SIGNIN", key(EMAIL, "EnableSignInWithEmail", Ty::Bool)),
    var(
        "MATTERMOST_USERNAME_SIGNIN",
        key(EMAIL, "EnableSignInWithUsername", Ty::Bool),
    ),
    var("MATTERMOST_EMAIL", key(EMAIL, "FeedbackEmail", Ty::Str)),
    var(
        "MATTERMOST_SUPPORT_EMAIL",
        key("SupportSettings", "SupportEmail", Ty::Str),
    ),
    var("MATTERMOST_EMAIL_NOTIFICATIONS", Handling::Derived),
    var("MATTERMOST_EMAIL_VERIFICATION", Handling::Derived),
    var("MATTERMOST_ENABLE_EMAIL_BATCHING", Handling::Derived),
    var("MATTERMOST_PUSH_SERVER", key(EMAIL, "PushNotificationServer", Ty::Str)),
    var("MATTERMOST_ENABLE_PUSH_NOTIFICATIONS", Handling::Derived),
    var("MATTERMOST_PUSH_FULL_MESSAGE", Handling::Derived),
    var("MATTERMOST_PUSH_CONTENTS", Handling::Derived),
    var("MATTERMOST_MAX_FILE_SIZE", key(FILE, "MaxFileSize", Ty::Int { min: 1 })),
    var("MATTERMOST_ENABLE_PUBLIC_LINKS", Handling::Derived),
    var("MATTERMOST_DATA_DIR", key(FILE, "Directory", Ty::Str)),
    var("MATTERMOST_LOG_DIR", key("LogSettings", "FileLocation", Ty::Str)),
    var("MATTERMOST_ENABLE_RATE_LIMIT", Handling::Edge),
    var("MATTERMOST_RATE_LIMIT_QPS", Handling::Edge),
    var("MATTERMOST_RATE_LIMIT_SESSIONS", Handling::Edge),
    var("MATTERMOST_RATE_LIMIT_BY_IP", Handling::Edge),
    var("MATTERMOST_RATE_LIMIT_HEADERS", Handling::Edge),
    var("MATTERMOST_SHOW_EMAIL", key(PRIVACY, "ShowEmailAddress", Ty::Bool)),
    var("MATTERMOST_SHOW_NAME", key(PRIVACY, "ShowFullName", Ty::Bool)),
    var(
        "MATTERMOST_SERVER_LOCALE",
        key(LOCALE, "DefaultServerLocale", Ty::Str),
    ),
    var(
        "MATTERMOST_CLIENT_LOCALE",
        key(LOCALE, "DefaultClientLocale", Ty::Str),
    ),
    var("MATTERMOST_LOCALES", key(LOCALE, "AvailableLocales", Ty::Str)),
    var(
        "MATTERMOST_MIGRATION_DEFAULT_TEAM",
        Handling::Ignored(
            "it only fed the one-off Mattermost 2.x to 3.0 database migration, long gone",
        ),
    ),
    var("DB_ADAPTER", Handling::Derived),
    var("DB_HOST", Handling::Derived),
    var("DB_PORT", Handling::Derived),
    var("DB_NAME", Handling::Derived),
    var("DB_USER", Handling::Derived),
    var("DB_PASS", Handling::Derived),
    var("DB_ENCODING", Handling::Derived),
    var("MATTERMOST_DATASOURCE", Handling::Derived),
    var(
        "DB_ROOT_PASS",
        Handling::Ignored("the old image never used it (removed from the image in 2016)"),
    ),
    var("MYSQL_PORT_3306_TCP_ADDR", Handling::Derived),
    var("MYSQL_PORT_3306_TCP_PORT", Handling::Derived),
    var("MYSQL_ENV_MYSQL_USER", Handling::Derived),
    var("MYSQL_ENV_MYSQL_PASSWORD", Handling::Derived),
    var("MYSQL_ENV_MYSQL_DATABASE", Handling::Derived),
    var("POSTGRES_PORT_5432_TCP_ADDR", Handling::Derived),
    var("POSTGRES_PORT_5432_TCP_PORT", Handling::Derived),
    var("POSTGRES_ENV_POSTGRES_USER", Handling::Derived),
    var("POSTGRES_ENV_POSTGRES_PASSWORD", Handling::Derived),
    var("POSTGRES_ENV_POSTGRES_DB", Handling::Derived),
    var("SMTP_HOST", key(EMAIL, "SMTPServer", Ty::Str)),
    var("SMTP_PORT", key(EMAIL, "SMTPPort", Ty::PortString)),
    var("SMTP_USER", key(EMAIL, "SMTPUsername", Ty::Str)),
    var("SMTP_PASS", key(EMAIL, "SMTPPassword", Ty::Secret { min_len: 0 })),
    var(
        "SMTP_SECURITY",
        key(EMAIL, "ConnectionSecurity", Ty::OneOf(&["TLS", "STARTTLS", "PLAIN"])),
    ),
    var(
        "SMTP_TLS",
        Handling::Ignored("it had no effect in the old image; use SMTP_SECURITY=TLS or STARTTLS"),
    ),
    var(
        "SMTP_DOMAIN",
        Handling::Ignored("the old image never read it (it only appeared in a README example)"),
    ),
    var("GITLAB_ID", key(GITLAB, "Id", Ty::Str)),
    var("GITLAB_SECRET", key(GITLAB, "Secret", Ty::Secret { min_len: 0 })),
    var("GITLAB_SCOPE", key(GITLAB, "Scope", Ty::Str)),
    var("GITLAB_AUTH_ENDPOINT", key(GITLAB, "AuthEndpoint", Ty::Str)),
    var("GITLAB_TOKEN_ENDPOINT", key(GITLAB, "TokenEndpoint", Ty::Str)),
    var("GITLAB_API_ENDPOINT", key(GITLAB, "UserAPIEndpoint", Ty::Str)),
    var("GITLAB_ENABLE", Handling::Derived),
    var(
        "NGINX_X_FORWARDED_PROTO",
        Handling::Ignored("it configured the old embedded nginx; mm-edge sets X-Forwarded-Proto itself"),
    ),
    var(
        "NGINX_HOST",
        Handling::Ignored(
            "it configured the sample nginx container, which mm-edge replaces; the public host \
             is part of mm-edge's site URL",
        ),
    ),
];
