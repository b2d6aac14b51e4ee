//! Small value types of the configuration: human durations (`15m`, `7d`) and rates (`10/1m`).

use std::fmt;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A duration written as `30s`, `15m`, `7d`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(std::time::Duration);

impl Duration {
    pub const fn secs(secs: u64) -> Self {
        Duration(std::time::Duration::from_secs(secs))
    }

    pub fn as_std(self) -> std::time::Duration {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Whole units read best: 900s is written `15m`, 604800s `7d`.
        let secs = self.0.as_secs();
        if self.0.subsec_nanos() != 0 {
            return write!(f, "{}", humantime::format_duration(self.0));
        }
        for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60)] {
            if secs != 0 && secs % size == 0 {
                return write!(f, "{}{unit}", secs / size);
            }
        }
        write!(f, "{secs}s")
    }
}

impl std::str::FromStr for Duration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(text.trim())
            .map(Duration)
            .map_err(|e| format!("`{text}` is not a duration like 30s, 15m, 7d ({e})"))
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// A rate limit written `N/period`, e.g. `10/1m`: at most N attempts per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: Duration,
}

impl Rate {
    pub const fn new(count: u32, period_secs: u64) -> Self {
        Rate {
            count,
            period: Duration::secs(period_secs),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.period)
    }
}

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{text}` is not a rate like 10/1m (attempts/period)");
        let (count, period) = text.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let period: Duration = period.parse().map_err(|_| bad())?;
        if count == 0 || period.is_zero() {
            return Err(format!("`{text}`: count and period must be above 0"));
        }
        Ok(Rate { count, period })
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// `redis://user:secret@host/0` becomes `redis://user:<redacted>@host/0`.
pub fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    let user = userinfo.split_once(':').map(|(user, _)| user);
    match user {
        Some(user) => format!("{}{user}:<redacted>{}", &url[..scheme_end + 3], &rest[at..]),
        // `redis://secret@host` puts the password where the user would be.
        None => format!("{}<redacted>{}", &url[..scheme_end + 3], &rest[at..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for (text, secs) in [("15m", 900), ("7d", 604800), ("30s", 30), ("1h 30m", 5400)] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.as_std().as_secs(), secs);
            assert_eq!(d.to_string().parse::<Duration>().unwrap(), d);
        }
        assert!("15x".parse::<Duration>().is_err());
        assert!("".parse::<Duration>().is_err());
    }

    #[test]
    fn rates_parse() {
        let r: Rate = "10/1m".parse().unwrap();
        assert_eq!((r.count, r.period.as_std().as_secs()), (10, 60));
        for bad in ["10", "x/1m", "0/1m", "10/0s", "10/forever"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(redact_url_password(""), "");
        assert_eq!(redact_url_password("redis://h:6379"), "redis://h:6379");
        assert_eq!(
            redact_url_password("redis://u:p@h:6379/0"),
            "redis://u:<redacted>@h:6379/0"
        );
        assert_eq!(redact_url_password("redis://:p@h"), "redis://:<redacted>@h");
        assert_eq!(redact_url_password("redis://p@h"), "redis://<redacted>@h");
    }
}
