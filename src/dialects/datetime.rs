//! `DateTime` as Django and Craft write it: ISO-8601 to the second with the offset spelled out
//! (`2021-12-15T22:32:34+00:00`), the scalar of the karrio and craft schemas.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};

/// Unix seconds, shown as `YYYY-MM-DDTHH:MM:SS+00:00`.
pub struct DateTime(pub i64);

#[Scalar(name = "DateTime")]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => humantime::parse_rfc3339_weak(text)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| DateTime(d.as_secs() as i64))
                .ok_or_else(|| InputValueError::custom("expected an ISO-8601 date and time")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.0.max(0) as u64);
        let text = humantime::format_rfc3339_seconds(at).to_string();
        Value::String(format!("{}+00:00", text.trim_end_matches('Z')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_carry_their_offset() {
        assert_eq!(
            DateTime(1_639_607_554).to_value(),
            Value::String("2021-12-15T22:32:34+00:00".into())
        );
        assert_eq!(
            DateTime(1_607_222_893).to_value(),
            Value::String("2020-12-06T02:48:13+00:00".into())
        );
        assert_eq!(
            DateTime::parse(Value::String("2020-12-06T02:48:13+00:00".into()))
                .ok()
                .map(|d| d.0),
            Some(1_607_222_893)
        );
    }
}
