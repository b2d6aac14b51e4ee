//! The one macro of mutation payloads: `success`, `errors`, and the named extra fields (all
//! nullable), with constructors for success and failure.

/// `payload!(RegisterPayload { token: String, refresh_token: String })` defines the type;
/// `RegisterPayload::failed(failure)` (or `failed_as(failure, args)` for operations whose
/// argument names differ) and `RegisterPayload::done()` make its two kinds of answer.
macro_rules! payload {
    ($($(#[$meta:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? })*) => {$(
        $(#[$meta])*
        #[derive(async_graphql::SimpleObject, Default)]
        pub struct $name {
            pub success: bool,
            pub errors: Option<$crate::graphql::errors::ExpectedErrors>,
            $(pub $field: Option<$ty>,)*
        }

        #[allow(dead_code, clippy::needless_update)]
        impl $name {
            /// Success with every extra field null.
            pub fn done() -> Self {
                $name { success: true, ..Default::default() }
            }

            pub fn failed(failure: $crate::accounts::Failure) -> Self {
                Self::failed_as(failure, $crate::graphql::errors::ARGS)
            }

            pub fn failed_as(
                failure: $crate::accounts::Failure,
                args: $crate::graphql::errors::ArgNames,
            ) -> Self {
                $name {
                    success: false,
                    errors: Some($crate::graphql::errors::ExpectedErrors::new(failure, args)),
                    ..Default::default()
                }
            }

            /// `done()` or `failed()` from a result without a value.
            pub fn from_result(result: Result<(), $crate::accounts::Failure>) -> Self {
                match result {
                    Ok(()) => Self::done(),
                    Err(failure) => Self::failed(failure),
                }
            }
        }
    )*};
}

pub(crate) use payload;
