//! Webhooks signed as Standard Webhooks specifies: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,BASE64` over `{id}.{timestamp}.{body}` with the secret's bytes.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{Channel, Delivered, DeliveryError, Notice};

/// A webhook signing secret: `whsec_` and the secret's base64, as Standard Webhooks
/// writes it. Its bytes never show in `Debug`.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

impl WebhookSecret {
    /// Reads `whsec_BASE64` (the prefix is required: it tells a webhook secret from any
    /// other). Refuses a secret shorter than 24 bytes or longer than 64.
    pub fn parse(text: &str) -> Result<WebhookSecret, String> {
        let encoded = text
            .strip_prefix("whsec_")
            .ok_or("a webhook secret starts with `whsec_`")?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| "the part after `whsec_` is not base64")?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(format!(
                "the secret is {} bytes; Standard Webhooks asks for 24 to 64",
                bytes.len()
            ));
        }
        Ok(WebhookSecret(bytes))
    }

    /// The `webhook-signature` header's value for message `id` sent at `timestamp` (Unix
    /// seconds) with `body`: `v1,` and the base64 of HMAC-SHA256 over
    /// `{id}.{timestamp}.{body}`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

/// A [`Channel`] that POSTs each notice's JSON to a URL, signed with a [`WebhookSecret`].
///
/// The `webhook-id` is the notice's id, the same on every retry, so a receiver that
/// drops duplicates by it sees each notice once. The `webhook-timestamp` is the time of
/// sending by the system's clock (the receiver checks it against its own). A 2xx answer
/// is a delivery; any other answer, or none within the timeout, is a failed attempt.
#[derive(Debug, Clone)]
pub struct Webhook {
    url: reqwest::Url,
    secret: WebhookSecret,
    client: reqwest::Client,
}

impl Webhook {
    /// A webhook to `url` (`http://` or `https://`), signing with `secret`, each attempt
    /// given `timeout`.
    pub fn new(url: &str, secret: WebhookSecret, timeout: Duration) -> Result<Webhook, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("`{url}` is not an http:// or https:// URL"));
        }
        Ok(Webhook {
            url,
            secret,
            client: super::http_client(timeout)?,
        })
    }
}

#[async_trait::async_trait]
impl Channel for Webhook {
    async fn deliver(&self, notice: &Notice) -> Result<Delivered, DeliveryError> {
        let body = serde_json::to_vec(&notice.payload).map_err(DeliveryError::new)?;
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let signature = self.secret.sign(&notice.id, timestamp, &body);
        let answer = self
            .client
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &notice.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(DeliveryError::new)?;
        let status = answer.status();
        if status.is_success() {
            Ok(Delivered::default())
        } else {
            Err(DeliveryError::new(format!(
                "the receiver answered {status}"
            )))
        }
    }
}
