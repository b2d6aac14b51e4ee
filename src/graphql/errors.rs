//! The native schema's error forms: a [`Failure`] becomes `ExpectedErrorType`, the JSON object
//! `{"<field>": [{"message", "code"}]}` with `nonFieldErrors` for the rest, under the argument
//! names of the operation that failed; a failed query becomes a GraphQL error whose
//! `extensions.code` is the code.

use async_graphql::{
    ErrorExtensions, InputValueError, InputValueResult, Scalar, ScalarType, Value,
};

use crate::accounts::{Failure, Field};

/// What an operation calls the fields whose names differ between operations.
#[derive(Debug, Clone, Copy)]
pub struct ArgNames {
    pub new_password: &'static str,
    pub current_password: &'static str,
}

/// `newPassword1/2` and `password`: most operations.
pub const ARGS: ArgNames = ArgNames {
    new_password: "newPassword2",
    current_password: "password",
};
/// `register(password1, password2)`.
pub const REGISTER_ARGS: ArgNames = ArgNames {
    new_password: "password2",
    ..ARGS
};
/// `passwordChange(oldPassword, newPassword1, newPassword2)`.
pub const PASSWORD_CHANGE_ARGS: ArgNames = ArgNames {
    current_password: "oldPassword",
    ..ARGS
};

/// The wire name of a domain field.
pub fn field_name(field: Field, args: &ArgNames) -> &'static str {
    match field {
        Field::General => "nonFieldErrors",
        Field::Email => "email",
        Field::Username => "username",
        Field::NewPassword => args.new_password,
        Field::CurrentPassword => args.current_password,
        Field::KeyName => "name",
        Field::KeyId => "id",
    }
}

/// The `errors` of a payload.
pub struct ExpectedErrors {
    failure: Failure,
    args: ArgNames,
}

impl ExpectedErrors {
    pub fn new(failure: Failure, args: ArgNames) -> Self {
        ExpectedErrors { failure, args }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut object = serde_json::Map::new();
        for problem in self.failure.problems() {
            let entry = object
                .entry(field_name(problem.field, &self.args))
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            if let serde_json::Value::Array(list) = entry {
                list.push(serde_json::json!({
                    "message": problem.message,
                    "code": problem.code.as_str(),
                }));
            }
        }
        serde_json::Value::Object(object)
    }
}

#[Scalar(name = "ExpectedErrorType")]
impl ScalarType for ExpectedErrors {
    fn parse(_value: Value) -> InputValueResult<Self> {
        Err(InputValueError::custom("ExpectedErrorType is output only"))
    }

    fn to_value(&self) -> Value {
        Value::from_json(self.to_json()).unwrap_or(Value::Null)
    }
}

/// A failure of a query (queries have no payload): a GraphQL error with `extensions.code`.
pub fn query_error(failure: Failure) -> async_graphql::Error {
    let (code, message) = match failure.problems().first() {
        Some(problem) => (problem.code.as_str(), problem.message.clone()),
        None => ("invalid", String::new()),
    };
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Code;

    #[test]
    fn fields_take_the_operations_argument_names() {
        let mut failure = Failure::field(Field::NewPassword, Code::PasswordTooShort, "short");
        failure.add(Field::NewPassword, Code::PasswordTooCommon, "common");
        failure.add(Field::General, Code::RateLimited, "later");
        let json = ExpectedErrors::new(failure.clone(), REGISTER_ARGS).to_json();
        assert_eq!(json["password2"][1]["code"], "password_too_common");
        assert_eq!(json["nonFieldErrors"][0]["message"], "later");
        let json = ExpectedErrors::new(failure, ARGS).to_json();
        assert_eq!(json["newPassword2"][0]["code"], "password_too_short");
        let json = ExpectedErrors::new(Failure::invalid_password(), PASSWORD_CHANGE_ARGS).to_json();
        assert_eq!(json["oldPassword"][0]["code"], "invalid_password");
    }
}
