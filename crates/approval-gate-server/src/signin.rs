//! Signing in a browser with a bearer token: `GET /signin` asks for it, `POST /signin`
//! keeps it in the session cookie, `POST /signout` drops it.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::AppState;
use crate::auth::SESSION_COOKIE;
use crate::error::ConsoleError;
use crate::guard::from_console;

#[derive(Template)]
#[template(path = "signin.html")]
struct SigninPage<'a> {
    notice: Option<&'a str>,
}

fn page(status: StatusCode, notice: Option<&str>) -> Response {
    match (SigninPage { notice }).render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => ConsoleError::from(e).into_response(),
    }
}

/// `GET /signin`: the form.
pub(crate) async fn form() -> Response {
    page(StatusCode::OK, None)
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub(crate) struct SigninForm {
    #[serde(default)]
    token: String,
}

/// `POST /signin`: a token the console knows goes into the session cookie; anything else
/// gets the form again with 401. Only from the console's own page, so that another site
/// cannot sign a person in as someone else.
pub(crate) async fn sign_in(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SigninForm>,
) -> Response {
    if let Err(e) = from_console(&headers) {
        return e.into_response();
    }
    let token = form.token.trim();
    // A cookie value holds no spaces, commas, semicolons or quotes; no token the console
    // knows does either, since it would not survive the round trip.
    let cookie_safe = token
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'"' | b'\\'));
    if !cookie_safe || app.auth.token_holder(token).is_none() {
        return page(
            StatusCode::UNAUTHORIZED,
            Some("The console does not know that token."),
        );
    }
    let cookie = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    session(Redirect::to("/").into_response(), &cookie)
}

/// `POST /signout`: drops the session cookie.
pub(crate) async fn sign_out(headers: HeaderMap) -> Response {
    if let Err(e) = from_console(&headers) {
        return e.into_response();
    }
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    session(Redirect::to("/signin").into_response(), &cookie)
}

fn session(mut response: Response, cookie: &str) -> Response {
    match HeaderValue::from_str(cookie) {
        Ok(value) => {
            response.headers_mut().insert(header::SET_COOKIE, value);
            response
        }
        Err(_) => page(
            StatusCode::UNAUTHORIZED,
            Some("The console does not know that token."),
        ),
    }
}
