//! The self-service page (DESIGN.md, "The web form"): the HTML, its one script
//! and one stylesheet (embedded with `include_str!`, served by the function,
//! no third-party origin), the Content-Security-Policy, and the HTML answers
//! of `POST /accounts` for a browser posting the form without scripts.
//!
//! The page learns how to sign in and out from the function's configuration
//! (`WEB_SIGNIN_*`, put into a `data-signin` attribute). With scripts it posts
//! JSON itself; this module only renders what a script-less browser sees: the
//! form (without sign-in), or, where sign-in is required, a `<noscript>`
//! explanation and no form that could not work. It knows nothing of Chime or
//! of the name rule: the words it shows are chosen by the problem `code` the
//! adapter produced.

use lambda_http::http::{header, HeaderMap, HeaderValue, StatusCode};
use lambda_http::{Body, Response};

use crate::config::SignIn;

const INDEX: &str = include_str!("../web/index.html");
const SCRIPT: &str = include_str!("../web/app.js");
const STYLES: &str = include_str!("../web/app.css");

/// One of the page's static files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    Script,
    Styles,
}

/// The page, rendered once at init for this configuration.
#[derive(Debug, Clone)]
pub struct Page {
    form: String,
    signin: String,
    csp: String,
}

impl Page {
    /// Renders the form and its policy for `sign_in` (none: the form posts
    /// without signing in, as in `make dev` without auth).
    pub fn new(sign_in: Option<&SignIn>) -> Self {
        let signin = sign_in
            .map(|s| {
                serde_json::json!({
                    "authorize": s.authorize_url,
                    "token": s.token_url,
                    "clientId": s.client_id,
                    "scope": s.scopes,
                    "bearer": s.bearer.field(),
                    "logout": s.logout_url.as_deref().map(|url| serde_json::json!({
                        "url": url,
                        "style": logout_style(url),
                    })),
                })
                .to_string()
            })
            .unwrap_or_default();
        // The page talks to its own origin and, to redeem the sign-in code, to
        // the issuer's token endpoint; nothing else, no inline script or style.
        let token_origin = sign_in
            .and_then(|s| url::Url::parse(&s.token_url).ok())
            .map(|u| u.origin().ascii_serialization())
            .filter(|o| o != "null")
            .map(|o| format!(" {o}"))
            .unwrap_or_default();
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'{token_origin}; form-action 'self'; base-uri 'none'; \
             frame-ancestors 'none'"
        );
        let form = render(&signin, None);
        Self { form, signin, csp }
    }

    /// `GET /`.
    pub fn form(&self) -> Response<Body> {
        self.html(StatusCode::OK, self.form.clone())
    }

    /// The Content-Security-Policy every HTML answer carries.
    pub fn csp(&self) -> &str {
        &self.csp
    }

    /// The form again, with `code`'s words next to the field (a field error)
    /// or a result page saying what happened and when to retry.
    pub fn refused(
        &self,
        status: StatusCode,
        code: &str,
        retry_after: Option<u32>,
    ) -> Response<Body> {
        let words = words(code, retry_after);
        let body = if is_field_error(code) {
            render(&self.signin, Some(&words))
        } else {
            result_page(
                "There is a problem",
                &format!(
                    "<div class=\"error-summary\" role=\"alert\" tabindex=\"-1\" aria-labelledby=\"problem-title\">\
                     <h2 class=\"error-summary__title\" id=\"problem-title\">There is a problem</h2>\
                     <p class=\"body\">{}</p></div>\
                     <p class=\"body\"><a class=\"link\" href=\"./\">Go back to the form</a></p>",
                    escape(&words)
                ),
            )
        };
        let mut response = self.html(status, body);
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }

    /// The answer to a created account: its name and id.
    pub fn created(&self, account_id: &str, name: &str) -> Response<Body> {
        let body = result_page(
            "Account created",
            &format!(
                "<div class=\"panel\"><h2 class=\"panel__title\">Account created</h2>\
                 <p class=\"panel__body\">Account name</p>\
                 <p class=\"panel__name\">{}</p>\
                 <p class=\"panel__body\">Account ID</p>\
                 <p class=\"panel__id\"><code>{}</code></p></div>\
                 <p class=\"body\"><a class=\"link\" href=\"./\">Create another account</a></p>",
                escape(name),
                escape(account_id)
            ),
        );
        self.html(StatusCode::CREATED, body)
    }

    fn html(&self, status: StatusCode, body: String) -> Response<Body> {
        let mut response = Response::new(Body::Text(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        if let Ok(csp) = HeaderValue::from_str(&self.csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        security_headers(headers);
        // The sign-in code arrives in the page's query string: never cache it.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// `GET /app.js`, `GET /app.css`.
pub fn asset(asset: Asset) -> Response<Body> {
    let (body, content_type) = match asset {
        Asset::Script => (SCRIPT, "text/javascript; charset=utf-8"),
        Asset::Styles => (STYLES, "text/css; charset=utf-8"),
    };
    let mut response = Response::new(Body::Text(body.to_owned()));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    security_headers(headers);
    response
}

fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// Whether the client wants HTML rather than JSON: `text/html` is listed with
/// a higher quality than any JSON type. `*/*` alone (curl) or
/// `application/json` (the page's script) keep JSON.
pub fn prefers_html(accept: Option<&str>) -> bool {
    let Some(accept) = accept else {
        return false;
    };
    let mut html = 0.0_f32;
    let mut json = 0.0_f32;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let quality = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        match media.as_str() {
            "text/html" | "application/xhtml+xml" => html = html.max(quality),
            "application/json" | "application/problem+json" | "*/*" | "application/*" => {
                json = json.max(quality)
            }
            _ => {}
        }
    }
    html > 0.0 && html > json
}

fn is_field_error(code: &str) -> bool {
    matches!(
        code,
        "NameMissing" | "NameEmpty" | "NameNotString" | "NameTooLong" | "NameInvalidCharacter"
    )
}

/// Plain words for a problem `code`, the same the page's script shows.
pub fn words(code: &str, retry_after: Option<u32>) -> String {
    let wait = match retry_after {
        Some(1) => "Try again in 1 second.".to_owned(),
        Some(n) => format!("Try again in {n} seconds."),
        None => "Try again in a minute.".to_owned(),
    };
    match code {
        "NameMissing" | "NameEmpty" | "NameNotString" => "Enter an account name".to_owned(),
        "NameTooLong" => "Account name must be 100 characters or fewer".to_owned(),
        "NameInvalidCharacter" => {
            "Account name must not contain tabs, line breaks or other control characters".to_owned()
        }
        "BadRequestException" => {
            "Amazon Chime did not accept this account name. Check it and try again.".to_owned()
        }
        "ThrottledClientException" => format!("Amazon Chime is busy right now. {wait}"),
        "ServiceUnavailableException" | "AuthUnavailable" | "IdempotencyStoreFailed" => {
            format!("The service is unavailable right now. {wait}")
        }
        "IdempotencyInProgress" => format!("This request is still being processed. {wait}"),
        "ChimeTimeout" | "ChimeUnreachable" => format!(
            "Amazon Chime did not answer in time, so the account may not have been created. {wait}"
        ),
        "AuthenticationRequired" => "Sign in to create an account.".to_owned(),
        "TokenExpired" => "Your sign-in has expired. Sign in again.".to_owned(),
        "TokenInvalid" => "Your sign-in was not accepted. Sign in again.".to_owned(),
        "InsufficientScope" => NOT_ALLOWED.to_owned(),
        _ => format!("Something went wrong ({code}). {wait}"),
    }
}

/// What a 403 (the function's `InsufficientScope`, or API Gateway's missing
/// scope, which has no `code`) says; the page's script says the same.
const NOT_ALLOWED: &str = "You are signed in, but you do not have permission to create \
    accounts. Ask an administrator of this service to give you access, then sign out and \
    sign in again.";

/// Where sign-in is required, a browser without scripts is told so instead of
/// being given a form that would post into a `401`.
const NOSCRIPT: &str = "<noscript><div class=\"inset\" id=\"noscript\">\
    <h2 class=\"heading-m\">Turn on JavaScript to sign in</h2>\
    <p class=\"body\">You need to sign in to create an account, and signing in needs \
    JavaScript. Turn on JavaScript in your browser's settings, then reload this page.</p>\
    </div></noscript>\n";

/// How the issuer's sign-out endpoint is called: Cognito's `/logout` (always
/// at the root of the pool's domain, hosted or custom) takes `client_id` and
/// `logout_uri`; any other URL is an OpenID Connect `end_session_endpoint`
/// (`client_id`, `post_logout_redirect_uri`, `id_token_hint`).
fn logout_style(url: &str) -> &'static str {
    match url::Url::parse(url) {
        Ok(u) if u.path() == "/logout" => "cognito",
        _ => "oidc",
    }
}

/// The form, with `error` beside the name field when given. With sign-in
/// (`signin` not empty) the form starts hidden: the script shows it once
/// someone has signed in, and a browser without scripts reads the
/// `<noscript>` explanation instead.
fn render(signin: &str, error: Option<&str>) -> String {
    let (title, summary, summary_hidden, group, hidden, describedby, invalid, text) = match error {
        Some(words) => (
            "Error: ",
            format!("<li><a href=\"#name\">{}</a></li>", escape(words)),
            "",
            " form-group--error",
            "",
            " name-error",
            " aria-invalid=\"true\"",
            escape(words),
        ),
        None => (
            "",
            String::new(),
            " hidden",
            "",
            " hidden",
            "",
            "",
            String::new(),
        ),
    };
    let (noscript, form_hidden) = if signin.is_empty() {
        ("", "")
    } else {
        (NOSCRIPT, " hidden")
    };
    INDEX
        .replace("{{title}}", title)
        .replace("{{signin}}", &escape(signin))
        .replace("{{noscript}}", noscript)
        .replace("{{form-hidden}}", form_hidden)
        .replace("{{summary-hidden}}", summary_hidden)
        .replace("{{summary}}", &summary)
        .replace("{{group-class}}", group)
        .replace("{{error-hidden}}", hidden)
        .replace("{{error}}", &text)
        .replace("{{error-describedby}}", describedby)
        .replace("{{invalid}}", invalid)
}

fn result_page(title: &str, content: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} – Create an Amazon Chime account</title>\n\
         <link rel=\"stylesheet\" href=\"app.css\">\n</head>\n<body>\n\
         <header class=\"header\"><div class=\"width header__inner\">\
         <span class=\"header__service\">Chime onboarding</span></div></header>\n\
         <main id=\"main\" class=\"width main\">\n\
         <h1 class=\"heading\">Create an Amazon Chime account</h1>\n{content}\n</main>\n</body>\n</html>\n"
    )
}

/// HTML-escapes text for element content and quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BearerToken;

    fn text(response: &Response<Body>) -> String {
        String::from_utf8_lossy(response.body().as_ref()).into_owned()
    }

    #[test]
    fn html_is_preferred_only_when_asked_for() {
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8";
        assert!(prefers_html(Some(browser)));
        assert!(!prefers_html(Some("*/*")));
        assert!(!prefers_html(Some("application/json")));
        assert!(!prefers_html(Some("application/json, text/html;q=0.5")));
        assert!(!prefers_html(Some("text/html;q=0")));
        assert!(!prefers_html(None));
    }

    #[test]
    fn the_sign_in_settings_reach_the_page_escaped_and_the_policy_allows_only_the_token_origin() {
        let sign_in = SignIn {
            authorize_url: "https://auth.example/oauth2/authorize".to_owned(),
            token_url: "https://auth.example/oauth2/token".to_owned(),
            client_id: "client\"<x>".to_owned(),
            scopes: "openid chime-onboard/accounts.create".to_owned(),
            bearer: BearerToken::Access,
            logout_url: None,
        };
        let page = Page::new(Some(&sign_in));
        let html = text(&page.form());
        assert!(html.contains("&quot;clientId&quot;:&quot;client\\&quot;&lt;x&gt;&quot;"));
        assert!(html.contains("&quot;logout&quot;:null"));
        assert!(!html.contains("{{"), "every placeholder is filled");
        assert!(page
            .csp()
            .contains("connect-src 'self' https://auth.example;"));
        assert!(!page.csp().contains("unsafe-inline"));
        let page = Page::new(None);
        assert!(text(&page.form()).contains("data-signin=\"\""));
        assert!(page.csp().contains("connect-src 'self';"));
    }

    #[test]
    fn the_logout_endpoint_reaches_the_page_with_the_way_to_call_it() {
        let logout = |url: &str| {
            let sign_in = SignIn {
                authorize_url: "https://auth.example/oauth2/authorize".to_owned(),
                token_url: "https://auth.example/oauth2/token".to_owned(),
                client_id: "client".to_owned(),
                scopes: "openid".to_owned(),
                bearer: BearerToken::Access,
                logout_url: Some(url.to_owned()),
            };
            text(&Page::new(Some(&sign_in)).form())
        };
        let cognito = logout("https://pool.auth.eu-west-1.amazoncognito.com/logout");
        assert!(cognito.contains("&quot;style&quot;:&quot;cognito&quot;"));
        assert!(cognito.contains(
            "&quot;url&quot;:&quot;https://pool.auth.eu-west-1.amazoncognito.com/logout&quot;"
        ));
        let custom_domain = logout("https://login.example.com/logout");
        assert!(custom_domain.contains("&quot;style&quot;:&quot;cognito&quot;"));
        let oidc = logout("https://issuer.example/oauth2/end_session");
        assert!(oidc.contains("&quot;style&quot;:&quot;oidc&quot;"));
        let okta = logout("https://example.okta.com/oauth2/default/v1/logout");
        assert!(okta.contains("&quot;style&quot;:&quot;oidc&quot;"));
    }

    #[test]
    fn where_sign_in_is_required_a_browser_without_scripts_gets_no_form_it_cannot_use() {
        let sign_in = SignIn {
            authorize_url: "https://auth.example/oauth2/authorize".to_owned(),
            token_url: "https://auth.example/oauth2/token".to_owned(),
            client_id: "client".to_owned(),
            scopes: "openid".to_owned(),
            bearer: BearerToken::Access,
            logout_url: None,
        };
        let html = text(&Page::new(Some(&sign_in)).form());
        assert!(html.contains("<noscript>"));
        assert!(html.contains("Turn on JavaScript to sign in"));
        assert!(
            html.contains("novalidate hidden>"),
            "the form starts hidden"
        );
        // Without sign-in the form is there and posts without scripts.
        let html = text(&Page::new(None).form());
        assert!(!html.contains("<noscript>"));
        assert!(html.contains("action=\"accounts\" novalidate>"));
    }

    #[test]
    fn a_missing_scope_says_what_to_do() {
        let html = text(&Page::new(None).refused(StatusCode::FORBIDDEN, "InsufficientScope", None));
        assert!(html.contains("Ask an administrator of this service to give you access"));
    }

    #[test]
    fn a_field_error_is_shown_beside_the_field_and_in_the_summary() {
        let response = Page::new(None).refused(StatusCode::BAD_REQUEST, "NameTooLong", None);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let html = text(&response);
        assert!(html.contains("<title>Error: Create an Amazon Chime account</title>"));
        assert!(html.contains("aria-invalid=\"true\""));
        assert!(html.contains("aria-describedby=\"name-hint name-count name-error\""));
        assert_eq!(
            html.matches("Account name must be 100 characters or fewer")
                .count(),
            2
        );
    }

    #[test]
    fn a_throttled_answer_says_when_to_retry() {
        let response = Page::new(None).refused(
            StatusCode::TOO_MANY_REQUESTS,
            "ThrottledClientException",
            Some(1),
        );
        assert_eq!(
            response.headers().get(header::RETRY_AFTER),
            Some(&HeaderValue::from(1))
        );
        assert!(text(&response).contains("Try again in 1 second."));
    }

    #[test]
    fn the_account_name_and_id_are_shown_escaped() {
        let html = text(&Page::new(None).created("<id>", "Acme & <Co>"));
        assert!(html.contains("<code>&lt;id&gt;</code>"));
        assert!(html.contains("<p class=\"panel__name\">Acme &amp; &lt;Co&gt;</p>"));
    }
}
