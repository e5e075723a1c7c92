//! TEMPORARY stub until the CORS policy lands.
/// CORS settings.
#[derive(Debug, Clone)]
pub struct CorsConfig {
    /// Origins.
    pub domains: Vec<String>,
    /// Exposed headers.
    pub exposed_headers: Vec<String>,
    /// Credentials.
    pub allow_credentials: bool,
}
/// Policy.
#[derive(Debug)]
pub struct Cors;
impl Cors {
    /// Builds it.
    pub fn new(_c: &CorsConfig) -> Result<Option<Cors>, String> {
        Ok(None)
    }
    /// Preflight.
    pub fn preflight(
        &self,
        _m: &http::Method,
        _h: &http::HeaderMap,
    ) -> Option<(http::StatusCode, http::HeaderMap)> {
        None
    }
    /// Actual.
    pub fn apply_actual(&self, _o: Option<&http::HeaderValue>, _h: &mut http::HeaderMap) {}
}
