//! The administrator's switches, read from the environment, because that is
//! where an operator of someone else's software can always set them.

/// What the environment allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// DISABLE_VERSION_CHECK: send nothing at all.
    Disabled,
    /// DISABLE_TELEMETRY: check the version, withhold cluster and node identity.
    Anonymous,
    Full,
}

/// Set, non-empty and not "0"/"false"/"no"/"off" counts as set.
fn truthy(value: Option<String>) -> bool {
    value.is_some_and(|v| {
        let v = v.trim().to_ascii_lowercase();
        !v.is_empty() && !matches!(v.as_str(), "0" | "false" | "no" | "off")
    })
}

impl Policy {
    pub fn from_env() -> Self {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        if truthy(get("DISABLE_VERSION_CHECK")) {
            Policy::Disabled
        } else if truthy(get("DISABLE_TELEMETRY")) {
            Policy::Anonymous
        } else {
            Policy::Full
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(vars: &[(&str, &str)]) -> Policy {
        Policy::from_lookup(|k| {
            vars.iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn switches() {
        assert_eq!(policy(&[]), Policy::Full);
        assert_eq!(policy(&[("DISABLE_TELEMETRY", "1")]), Policy::Anonymous);
        assert_eq!(policy(&[("DISABLE_TELEMETRY", "0")]), Policy::Full);
        assert_eq!(
            policy(&[("DISABLE_VERSION_CHECK", "true")]),
            Policy::Disabled
        );
        assert_eq!(
            policy(&[("DISABLE_VERSION_CHECK", "yes"), ("DISABLE_TELEMETRY", "1")]),
            Policy::Disabled
        );
        assert_eq!(policy(&[("DISABLE_VERSION_CHECK", "")]), Policy::Full);
    }
}
