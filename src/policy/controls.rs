//! [`Budgets`] and the run controls ([`ControlsConfig`], [`Controls`]): the `budgets` and
//! `controls` sections of the config.
//!
//! The policy only holds these values. The gate keeps the run-time counters and switches
//! in the store, so several workers share them and another process can flip them.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// The `budgets` section: limits on one agent run. Each is optional; `None` means no
/// limit. The gate counts against them and stops a run that goes over one.
///
/// ```
/// use approval_gate::{Policy, config::Budgets};
///
/// let policy = Policy::from_yaml_str("budgets:\n  max_steps: 50\n  max_usd: 5\n")?;
/// assert_eq!(policy.budgets().max_steps, Some(50));
/// assert_eq!(policy.budgets().max_usd, Some(5.0));
/// assert_eq!(policy.budgets().max_seconds, None);
/// assert_eq!(Policy::from_yaml_str("")?.budgets(), &Budgets::default());
/// # Ok::<(), approval_gate::PolicyError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a map of budgets")]
pub struct Budgets {
    /// `max_steps`: how many steps (model turns) a run may take; a whole number, at least 1.
    #[serde(
        deserialize_with = "deserialize_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_steps: Option<u64>,
    /// `max_tool_calls`: how many tool calls a run may make; a whole number, at least 1.
    #[serde(
        deserialize_with = "deserialize_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_tool_calls: Option<u64>,
    /// `max_seconds`: how long a run may last, in whole seconds, at least 1.
    #[serde(
        deserialize_with = "deserialize_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_seconds: Option<u64>,
    /// `max_usd`: how much a run may cost in US dollars, as the host reports the cost of
    /// each step; a finite number greater than 0.
    #[serde(
        deserialize_with = "deserialize_usd",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_usd: Option<f64>,
}

impl Budgets {
    /// True when no budget is set (the config's `budgets` is left out of the version).
    pub(crate) fn is_unset(&self) -> bool {
        *self == Budgets::default()
    }

    /// The first budget that is out of range, as its key and the reason, for configs
    /// built in code (YAML is checked as it is read).
    pub(crate) fn check(&self) -> Result<(), (&'static str, String)> {
        let counts = [
            ("max_steps", self.max_steps),
            ("max_tool_calls", self.max_tool_calls),
            ("max_seconds", self.max_seconds),
        ];
        for (key, value) in counts {
            if value == Some(0) {
                return Err((key, count_message(0)));
            }
        }
        match self.max_usd {
            Some(usd) if !usd_ok(usd) => Err(("max_usd", usd_message(usd))),
            _ => Ok(()),
        }
    }
}

fn usd_ok(usd: f64) -> bool {
    usd.is_finite() && usd > 0.0
}

fn count_message(found: impl fmt::Display) -> String {
    format!("a budget is a whole number of at least 1, found `{found}`")
}

fn usd_message(found: impl fmt::Display) -> String {
    format!("`max_usd` is a number of US dollars greater than 0, found `{found}`")
}

/// A count budget: a whole number of at least 1; `null` is no limit.
fn deserialize_count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number of at least 1")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<u64>, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<u64>, E> {
            if v == 0 {
                Err(E::custom(count_message(v)))
            } else {
                Ok(Some(v))
            }
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<u64>, E> {
            match u64::try_from(v) {
                Ok(v) => self.visit_u64(v),
                Err(_) => Err(E::custom(count_message(v))),
            }
        }
        // Integers beyond 64 bits, which YAML readers give as 128-bit.
        fn visit_u128<E: de::Error>(self, v: u128) -> Result<Option<u64>, E> {
            Err(E::custom(count_message(v)))
        }
        fn visit_i128<E: de::Error>(self, v: i128) -> Result<Option<u64>, E> {
            Err(E::custom(count_message(v)))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<u64>, E> {
            Err(E::custom(count_message(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<u64>, E> {
            Err(E::custom(count_message(v)))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<u64>, E> {
            Err(E::custom(count_message(v)))
        }
    }
    d.deserialize_any(V)
}

/// `max_usd`: a finite number greater than 0 (a whole number is fine); `null` is no limit.
fn deserialize_usd<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Option<f64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number of US dollars greater than 0")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Option<f64>, E> {
            Ok(None)
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Option<f64>, E> {
            if usd_ok(v) {
                Ok(Some(v))
            } else {
                Err(E::custom(usd_message(v)))
            }
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Option<f64>, E> {
            // Whole dollars; any budget a config can state fits a double closely enough.
            self.visit_f64(v as f64)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Option<f64>, E> {
            if v <= 0 {
                Err(E::custom(usd_message(v)))
            } else {
                self.visit_f64(v as f64)
            }
        }
        // Integers beyond 64 bits, which YAML readers give as 128-bit.
        fn visit_u128<E: de::Error>(self, v: u128) -> Result<Option<f64>, E> {
            self.visit_f64(v as f64)
        }
        fn visit_i128<E: de::Error>(self, v: i128) -> Result<Option<f64>, E> {
            Err(E::custom(usd_message(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Option<f64>, E> {
            Err(E::custom(usd_message(v)))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Option<f64>, E> {
            Err(E::custom(usd_message(v)))
        }
    }
    d.deserialize_any(V)
}

/// The `controls` section: switches that stop or narrow every run of the policy.
///
/// These are the config's values. The gate also holds run-time switches in the store,
/// which another process can flip; the policy knows only the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "a map of controls")]
pub struct ControlsConfig {
    /// `kill_switch`: when enabled, every call is denied.
    #[serde(skip_serializing_if = "KillSwitchConfig::is_off")]
    pub kill_switch: KillSwitchConfig,
    /// `read_only`: when true, every tool that `policy.read_tools` does not name as a read
    /// is denied. Default `false`.
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
}

impl ControlsConfig {
    pub(crate) fn is_default(&self) -> bool {
        *self == ControlsConfig::default()
    }
}

/// `controls.kill_switch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    default,
    expecting = "a map of kill switch settings"
)]
pub struct KillSwitchConfig {
    /// `enabled`: when true, every evaluation denies, with the rule id
    /// `controls.kill_switch`. Default `false`.
    #[serde(skip_serializing_if = "is_false")]
    pub enabled: bool,
}

impl KillSwitchConfig {
    fn is_off(&self) -> bool {
        !self.enabled
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The run controls a policy's config sets, resolved: see [`Policy::controls`](crate::policy::Policy::controls).
///
/// ```
/// use approval_gate::{Policy, config::Controls};
///
/// let policy = Policy::from_yaml_str("controls:\n  read_only: true\n")?;
/// assert_eq!(policy.controls(), Controls { kill_switch: false, read_only: true });
/// # Ok::<(), approval_gate::PolicyError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Controls {
    /// `controls.kill_switch.enabled`: every call is denied.
    pub kill_switch: bool,
    /// `controls.read_only`: every tool that is not a read is denied.
    pub read_only: bool,
}

impl From<&ControlsConfig> for Controls {
    fn from(config: &ControlsConfig) -> Controls {
        Controls {
            kill_switch: config.kill_switch.enabled,
            read_only: config.read_only,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_read_whole_numbers_and_dollars_and_skip_what_is_unset() {
        let b: Budgets = serde_yaml::from_str(
            "{max_steps: 50, max_tool_calls: 100, max_seconds: 600, max_usd: 5}",
        )
        .unwrap();
        assert_eq!(
            b,
            Budgets {
                max_steps: Some(50),
                max_tool_calls: Some(100),
                max_seconds: Some(600),
                max_usd: Some(5.0),
            }
        );
        let b: Budgets = serde_yaml::from_str("{max_usd: 0.25, max_steps: null}").unwrap();
        assert_eq!(b.max_usd, Some(0.25));
        assert_eq!(b.max_steps, None);
        assert_eq!(
            serde_json::to_string(&Budgets {
                max_steps: Some(3),
                ..Budgets::default()
            })
            .unwrap(),
            r#"{"max_steps":3}"#
        );
        assert_eq!(serde_json::to_string(&Budgets::default()).unwrap(), "{}");
    }

    #[test]
    fn budgets_out_of_range_are_refused() {
        for bad in ["0", "-1", "1.5", "'5'", "true"] {
            let err = serde_yaml::from_str::<Budgets>(&format!("max_steps: {bad}")).unwrap_err();
            assert!(
                err.to_string()
                    .contains("a budget is a whole number of at least 1"),
                "{err}"
            );
        }
        for bad in ["0", "-2", "0.0", "-0.5", ".inf", ".nan", "'5'"] {
            let err = serde_yaml::from_str::<Budgets>(&format!("max_usd: {bad}")).unwrap_err();
            assert!(err.to_string().contains("greater than 0"), "{err}");
        }
        let zero = Budgets {
            max_seconds: Some(0),
            ..Budgets::default()
        };
        assert_eq!(zero.check().unwrap_err().0, "max_seconds");
        let nan = Budgets {
            max_usd: Some(f64::NAN),
            ..Budgets::default()
        };
        assert_eq!(nan.check().unwrap_err().0, "max_usd");
        assert!(Budgets::default().check().is_ok());
    }

    #[test]
    fn controls_are_off_by_default_and_skip_when_off() {
        let c: ControlsConfig =
            serde_yaml::from_str("{kill_switch: {enabled: true}, read_only: true}").unwrap();
        assert_eq!(
            Controls::from(&c),
            Controls {
                kill_switch: true,
                read_only: true
            }
        );
        let off: ControlsConfig =
            serde_yaml::from_str("{kill_switch: {enabled: false}, read_only: false}").unwrap();
        assert!(off.is_default());
        assert_eq!(serde_json::to_string(&off).unwrap(), "{}");
        assert_eq!(Controls::from(&off), Controls::default());
    }
}
