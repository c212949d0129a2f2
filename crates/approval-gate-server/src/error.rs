//! One error for the console, with the status each desk refusal maps to.

use approval_gate::DeskError;
use askama::Template;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// What went wrong with a console request. Each desk refusal has its status: 403
/// refused, 404 not found, 409 already decided, 410 expired, 422 an edit or grant that
/// cannot be made; never a bare 500 for a person's mistake. Nothing changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsoleError {
    /// No identity: no trusted proxy header, no known bearer token.
    #[error("sign in through the console's proxy, or send a known bearer token")]
    Unauthenticated,
    /// A state-changing request that did not come from the console's own pages.
    #[error("this request did not come from the console's own pages")]
    CrossSite,
    /// The text is not a request id.
    #[error("`{0}` is not a request id")]
    BadId(String),
    /// The edited arguments are not JSON.
    #[error("the edited arguments are not JSON: {0}")]
    BadEdit(String),
    /// A form field holds something the form does not take.
    #[error("{0}")]
    BadForm(&'static str),
    /// The page is for the console's administrators only.
    #[error("only the console's administrators may do this")]
    NotAdmin,
    /// The desk refused, or the store or audit sink failed.
    #[error(transparent)]
    Desk(#[from] DeskError),
    /// A page could not be rendered.
    #[error("the page could not be rendered")]
    Render(#[from] askama::Error),
}

impl ConsoleError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ConsoleError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ConsoleError::CrossSite | ConsoleError::NotAdmin => StatusCode::FORBIDDEN,
            ConsoleError::BadForm(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ConsoleError::BadId(_) => StatusCode::BAD_REQUEST,
            ConsoleError::BadEdit(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ConsoleError::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ConsoleError::Desk(e) => match e {
                DeskError::NotFound { .. } | DeskError::GrantNotFound { .. } => {
                    StatusCode::NOT_FOUND
                }
                DeskError::AlreadyDecided { .. } => StatusCode::CONFLICT,
                DeskError::Expired { .. } => StatusCode::GONE,
                DeskError::Refused { .. } => StatusCode::FORBIDDEN,
                DeskError::EditRefused { .. }
                | DeskError::InvalidArgs { .. }
                | DeskError::GrantRefused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            },
        }
    }

    /// The message for a person: the error and its causes, one line.
    pub fn message(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        text
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    status: u16,
    message: &'a str,
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.message();
        let page = ErrorPage {
            status: status.as_u16(),
            message: &message,
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (status, message).into_response(),
        }
    }
}

/// A [`ConsoleError`] answered as JSON, for the API: `{"error": "...", "status": 403}`.
#[derive(Debug)]
pub struct ApiError(pub ConsoleError);

impl<E: Into<ConsoleError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let body = serde_json::json!({"error": self.0.message(), "status": status.as_u16()});
        (status, Json(body)).into_response()
    }
}
