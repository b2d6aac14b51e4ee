//! The django schema, built once at start with async-graphql's dynamic schema: the type names
//! are the original's (`UserNode` with Relay global ids, `UserNodeConnection`, `PageInfo`,
//! `ExpectedErrorType`, `GenericScalar`, and one payload type per mutation named as
//! graphene names it in the chosen [`Variant`]).

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dynamic::{
    Field, FieldFuture, FieldValue, InputObject, InputValue, Interface, InterfaceField, Object,
    ObjectAccessor, ResolverContext, Scalar, Schema, TypeRef,
};
use async_graphql::Value;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::ops::{Call, CookieChange, Op, Out, OutTy, Payload, Ty, OPS};
use super::{State, Variant};
use crate::accounts::{ApiKey, Failure, User, UserFilter};
use crate::config;
use crate::graphql::errors::query_error;
use crate::graphql::Caller;

const USER_NODE: &str = "UserNode";

fn time(unix: i64) -> Value {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    Value::String(humantime::format_rfc3339_seconds(at).to_string())
}

fn text(value: Option<&str>) -> Value {
    value.map_or(Value::Null, |v| Value::String(v.to_string()))
}

fn json(value: serde_json::Value) -> Value {
    Value::from_json(value).unwrap_or(Value::Null)
}

/// graphene's Relay global id of a user: `base64("UserNode:<pk>")`; an account without a
/// number yet is named by its id instead.
pub(super) fn global_id(user: &User) -> String {
    let local = match user.serial {
        Some(serial) => serial.to_string(),
        None => user.id.clone(),
    };
    STANDARD.encode(format!("{USER_NODE}:{local}"))
}

/// What an `id` argument names: a number (from a global id) or an account id (a global id
/// made from one, or the JWT `sub` itself).
enum UserRef {
    Serial(i64),
    Id(String),
}

fn user_ref(id: &str) -> UserRef {
    let decoded = STANDARD
        .decode(id)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    match decoded
        .as_deref()
        .and_then(|text| text.strip_prefix("UserNode:"))
    {
        Some(local) => match local.parse::<i64>() {
            Ok(serial) => UserRef::Serial(serial),
            Err(_) => UserRef::Id(local.to_string()),
        },
        None => UserRef::Id(id.to_string()),
    }
}

fn state<'a>(ctx: &ResolverContext<'a>) -> async_graphql::Result<&'a Arc<State>> {
    ctx.data::<Arc<State>>()
}

fn caller(ctx: &ResolverContext<'_>) -> Caller {
    ctx.data_opt::<Caller>().cloned().unwrap_or_default()
}

/// A field of an object whose parent value is a `T`.
fn field_of<T: Send + Sync + 'static>(name: &str, ty: TypeRef, get: fn(&T) -> Value) -> Field {
    Field::new(name, ty, move |ctx| {
        FieldFuture::new(async move {
            let parent = ctx.parent_value.try_downcast_ref::<T>()?;
            Ok(Some(FieldValue::value(get(parent))))
        })
    })
}

fn user_node() -> Object {
    let s = TypeRef::named(TypeRef::STRING);
    let b = || TypeRef::named_nn(TypeRef::BOOLEAN);
    Object::new(USER_NODE)
        .implement("Node")
        .field(field_of::<User>(
            "id",
            TypeRef::named_nn(TypeRef::ID),
            |u| Value::String(global_id(u)),
        ))
        .field(field_of::<User>("pk", TypeRef::named(TypeRef::INT), |u| {
            u.serial.map_or(Value::Null, Value::from)
        }))
        .field(field_of::<User>(
            "email",
            TypeRef::named_nn(TypeRef::STRING),
            |u| Value::String(u.email.clone()),
        ))
        .field(field_of::<User>("username", s.clone(), |u| {
            text(u.username.as_deref())
        }))
        .field(field_of::<User>("firstName", s.clone(), |u| {
            text(Some(u.first_name.as_str()).filter(|n| !n.is_empty()))
        }))
        .field(field_of::<User>("lastName", s.clone(), |u| {
            text(Some(u.last_name.as_str()).filter(|n| !n.is_empty()))
        }))
        .field(field_of::<User>("fullName", s.clone(), |u| {
            text(Some(u.full_name().as_str()).filter(|n| !n.is_empty()))
        }))
        .field(field_of::<User>("isActive", b(), |u| u.is_active.into()))
        .field(field_of::<User>("isStaff", b(), |u| u.is_staff.into()))
        .field(field_of::<User>("verified", b(), |u| u.verified.into()))
        .field(field_of::<User>("archived", b(), |u| u.archived.into()))
        .field(field_of::<User>("totpEnabled", b(), |u| {
            u.totp_enabled().into()
        }))
        .field(field_of::<User>("secondaryEmail", s, |u| {
            text(u.secondary_email.as_deref())
        }))
        .field(field_of::<User>(
            "roles",
            TypeRef::named_nn_list_nn(TypeRef::STRING),
            |u| Value::List(u.roles.iter().cloned().map(Value::String).collect()),
        ))
        .field(field_of::<User>(
            "dateJoined",
            TypeRef::named_nn("DateTime"),
            |u| time(u.date_joined),
        ))
        .field(field_of::<User>(
            "lastLogin",
            TypeRef::named("DateTime"),
            |u| u.last_login.map_or(Value::Null, time),
        ))
}

fn api_key_type() -> Object {
    Object::new("ApiKey")
        .field(field_of::<ApiKey>(
            "id",
            TypeRef::named_nn(TypeRef::ID),
            |k| Value::String(k.id.clone()),
        ))
        .field(field_of::<ApiKey>(
            "name",
            TypeRef::named_nn(TypeRef::STRING),
            |k| Value::String(k.name.clone()),
        ))
        .field(field_of::<ApiKey>(
            "prefix",
            TypeRef::named_nn(TypeRef::STRING),
            |k| Value::String(k.prefix.clone()),
        ))
        .field(field_of::<ApiKey>(
            "createdAt",
            TypeRef::named_nn("DateTime"),
            |k| time(k.created_at),
        ))
        .field(field_of::<ApiKey>(
            "lastUsedAt",
            TypeRef::named("DateTime"),
            |k| k.last_used_at.map_or(Value::Null, time),
        ))
}

/// A page of the `users` connection.
struct Connection {
    edges: Vec<(String, User)>,
    has_next: bool,
    has_previous: bool,
    total: usize,
}

/// graphene's array cursors: `base64("arrayconnection:<offset>")`.
fn cursor(offset: usize) -> String {
    STANDARD.encode(format!("arrayconnection:{offset}"))
}

fn offset_of(cursor: &str) -> Option<usize> {
    let text = String::from_utf8(STANDARD.decode(cursor).ok()?).ok()?;
    text.strip_prefix("arrayconnection:")?.parse().ok()
}

fn connection_types() -> [Object; 3] {
    let page_info = Object::new("PageInfo")
        .field(field_of::<Connection>(
            "hasNextPage",
            TypeRef::named_nn(TypeRef::BOOLEAN),
            |c| c.has_next.into(),
        ))
        .field(field_of::<Connection>(
            "hasPreviousPage",
            TypeRef::named_nn(TypeRef::BOOLEAN),
            |c| c.has_previous.into(),
        ))
        .field(field_of::<Connection>(
            "startCursor",
            TypeRef::named(TypeRef::STRING),
            |c| c.edges.first().map_or(Value::Null, |e| e.0.clone().into()),
        ))
        .field(field_of::<Connection>(
            "endCursor",
            TypeRef::named(TypeRef::STRING),
            |c| c.edges.last().map_or(Value::Null, |e| e.0.clone().into()),
        ));
    let edge = Object::new("UserNodeEdge")
        .field(Field::new("node", TypeRef::named(USER_NODE), |ctx| {
            FieldFuture::new(async move {
                let (_, user) = ctx.parent_value.try_downcast_ref::<(String, User)>()?;
                Ok(Some(FieldValue::borrowed_any(user)))
            })
        }))
        .field(field_of::<(String, User)>(
            "cursor",
            TypeRef::named_nn(TypeRef::STRING),
            |e| Value::String(e.0.clone()),
        ));
    let connection = Object::new("UserNodeConnection")
        .field(Field::new(
            "pageInfo",
            TypeRef::named_nn("PageInfo"),
            |ctx| {
                FieldFuture::new(async move {
                    let connection = ctx.parent_value.try_downcast_ref::<Connection>()?;
                    Ok(Some(FieldValue::borrowed_any(connection)))
                })
            },
        ))
        .field(Field::new(
            "edges",
            TypeRef::named_list_nn("UserNodeEdge"),
            |ctx| {
                FieldFuture::new(async move {
                    let connection = ctx.parent_value.try_downcast_ref::<Connection>()?;
                    Ok(Some(FieldValue::list(
                        connection
                            .edges
                            .iter()
                            .map(|edge| FieldValue::borrowed_any(edge)),
                    )))
                })
            },
        ))
        .field(field_of::<Connection>(
            "totalCount",
            TypeRef::named(TypeRef::INT),
            |c| Value::from(c.total as i64),
        ));
    [page_info, edge, connection]
}

fn arg_string(args: &ObjectAccessor<'_>, name: &str) -> Option<String> {
    args.get(name)
        .filter(|v| !v.is_null())
        .and_then(|v| v.string().ok().map(str::to_string))
}

fn arg_bool(args: &ObjectAccessor<'_>, name: &str) -> Option<bool> {
    args.get(name)
        .filter(|v| !v.is_null())
        .and_then(|v| v.boolean().ok())
}

fn arg_count(args: &ObjectAccessor<'_>, name: &str) -> async_graphql::Result<Option<usize>> {
    match args.get(name).filter(|v| !v.is_null()) {
        None => Ok(None),
        Some(v) => usize::try_from(v.i64()?)
            .map(Some)
            .map_err(|_| async_graphql::Error::new(format!("`{name}` must not be negative"))),
    }
}

fn forbidden_or(failure: Failure) -> async_graphql::Error {
    query_error(failure)
}

fn query() -> Object {
    let users_args = [
        ("offset", TypeRef::INT),
        ("before", TypeRef::STRING),
        ("after", TypeRef::STRING),
        ("first", TypeRef::INT),
        ("last", TypeRef::INT),
        ("email", TypeRef::STRING),
        ("username", TypeRef::STRING),
        ("username_Icontains", TypeRef::STRING),
        ("username_Istartswith", TypeRef::STRING),
        ("isActive", TypeRef::BOOLEAN),
        ("status_Archived", TypeRef::BOOLEAN),
        ("status_Verified", TypeRef::BOOLEAN),
        ("status_SecondaryEmail", TypeRef::STRING),
        ("isStaff", TypeRef::BOOLEAN),
        ("search", TypeRef::STRING),
    ];
    let mut users = Field::new("users", TypeRef::named("UserNodeConnection"), |ctx| {
        FieldFuture::new(async move { users(&ctx).await.map(Some) })
    });
    for (name, ty) in users_args {
        users = users.argument(InputValue::new(name, TypeRef::named(ty)));
    }
    Object::new("Query")
        .field(Field::new("me", TypeRef::named(USER_NODE), |ctx| {
            FieldFuture::new(async move {
                let state = state(&ctx)?;
                let caller = caller(&ctx);
                let me = state
                    .accounts
                    .profile
                    .me(caller.user_id.as_deref())
                    .await
                    .map_err(query_error)?;
                Ok(me.map(FieldValue::owned_any))
            })
        }))
        .field(
            Field::new("user", TypeRef::named(USER_NODE), |ctx| {
                FieldFuture::new(async move {
                    let state = state(&ctx)?;
                    let caller = caller(&ctx);
                    let id = ctx.args.try_get("id")?.string()?.to_string();
                    let staff = &state.accounts.staff;
                    let found = match user_ref(&id) {
                        UserRef::Serial(serial) => {
                            staff
                                .user_by_serial(caller.user_id.as_deref(), serial)
                                .await
                        }
                        UserRef::Id(id) => staff.user(caller.user_id.as_deref(), &id).await,
                    };
                    Ok(found.map_err(forbidden_or)?.map(FieldValue::owned_any))
                })
            })
            .argument(InputValue::new("id", TypeRef::named_nn(TypeRef::ID))),
        )
        .field(users)
        .field(Field::new(
            "publicKey",
            TypeRef::named_nn(TypeRef::STRING),
            |ctx| {
                FieldFuture::new(async move {
                    let state = state(&ctx)?;
                    let keys = state.app.tokens.keys().snapshot();
                    let pem = keys.current().map(|k| k.public_pem.clone());
                    Ok(Some(Value::String(pem.unwrap_or_default())))
                })
            },
        ))
        .field(
            Field::new(
                "emailAvailable",
                TypeRef::named_nn(TypeRef::BOOLEAN),
                |ctx| {
                    FieldFuture::new(async move {
                        let state = state(&ctx)?;
                        let email = ctx.args.try_get("email")?.string()?.to_string();
                        let free = state
                            .accounts
                            .registration
                            .email_available(&email, caller(&ctx).client_ip)
                            .await
                            .map_err(query_error)?;
                        Ok(Some(Value::Boolean(free)))
                    })
                },
            )
            .argument(InputValue::new("email", TypeRef::named_nn(TypeRef::STRING))),
        )
        .field(Field::new(
            "apiKeys",
            TypeRef::named_nn_list_nn("ApiKey"),
            |ctx| {
                FieldFuture::new(async move {
                    let state = state(&ctx)?;
                    let keys = state
                        .accounts
                        .api_keys
                        .list(caller(&ctx).user_id.as_deref())
                        .await
                        .map_err(query_error)?;
                    Ok(Some(FieldValue::list(
                        keys.into_iter().map(FieldValue::owned_any),
                    )))
                })
            },
        ))
}

/// Staff only, as natively; deactivated accounts are listed too.
async fn users(ctx: &ResolverContext<'_>) -> async_graphql::Result<FieldValue<'static>> {
    let state = state(ctx)?;
    let args = &ctx.args;
    let filter = UserFilter {
        email: arg_string(args, "email"),
        username: arg_string(args, "username"),
        verified: arg_bool(args, "status_Verified"),
        archived: arg_bool(args, "status_Archived"),
        is_staff: arg_bool(args, "isStaff"),
        search: arg_string(args, "search"),
        is_active: arg_bool(args, "isActive"),
        username_contains: arg_string(args, "username_Icontains"),
        username_starts_with: arg_string(args, "username_Istartswith"),
        secondary_email: arg_string(args, "status_SecondaryEmail"),
    };
    let list = state
        .accounts
        .staff
        .list(caller(ctx).user_id.as_deref(), &filter)
        .await
        .map_err(query_error)?;
    let total = list.len();
    let invalid = |name: &str| async_graphql::Error::new(format!("`{name}` is not a cursor"));
    let mut start = arg_count(args, "offset")?.unwrap_or(0);
    if let Some(after) = arg_string(args, "after") {
        start = start.max(offset_of(&after).ok_or_else(|| invalid("after"))? + 1);
    }
    let mut end = total;
    if let Some(before) = arg_string(args, "before") {
        end = end.min(offset_of(&before).ok_or_else(|| invalid("before"))?);
    }
    let start = start.min(total);
    let mut end = end.max(start);
    let mut start = start;
    if let Some(first) = arg_count(args, "first")? {
        end = end.min(start.saturating_add(first));
    }
    if let Some(last) = arg_count(args, "last")? {
        start = start.max(end.saturating_sub(last));
    }
    let edges = list
        .into_iter()
        .enumerate()
        .skip(start)
        .take(end - start)
        .map(|(i, user)| (cursor(i), user))
        .collect();
    Ok(FieldValue::owned_any(Connection {
        edges,
        has_next: end < total,
        has_previous: start > 0,
        total,
    }))
}

fn arg_type(ty: Ty) -> TypeRef {
    match ty {
        Ty::Str => TypeRef::named(TypeRef::STRING),
        Ty::RequiredStr => TypeRef::named_nn(TypeRef::STRING),
        Ty::RequiredId => TypeRef::named_nn(TypeRef::ID),
    }
}

fn out_type(ty: OutTy) -> TypeRef {
    TypeRef::named(match ty {
        OutTy::StrList => return TypeRef::named_nn_list(TypeRef::STRING),
        OutTy::Str => TypeRef::STRING,
        OutTy::Int => TypeRef::INT,
        OutTy::Bool => TypeRef::BOOLEAN,
        OutTy::Generic => "GenericScalar",
        OutTy::User => USER_NODE,
        OutTy::ApiKey => "ApiKey",
    })
}

/// One payload field, read from the parent [`Payload`].
fn payload_field(name: &'static str, ty: TypeRef) -> Field {
    Field::new(name, ty, move |ctx| {
        FieldFuture::new(async move {
            let payload = ctx.parent_value.try_downcast_ref::<Payload>()?;
            let value = match name {
                "success" => Some(FieldValue::value(payload.success)),
                "errors" => payload.errors.clone().map(|e| FieldValue::value(json(e))),
                "clientMutationId" => payload
                    .client_mutation_id
                    .clone()
                    .map(|id| FieldValue::value(Value::String(id))),
                _ => payload
                    .values
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, out)| match out {
                        Out::Json(value) => FieldValue::value(json(value.clone())),
                        Out::User(user) => FieldValue::borrowed_any(&**user),
                        Out::ApiKey(key) => FieldValue::borrowed_any(key),
                    }),
            };
            Ok(value)
        })
    })
}

/// The strings a call passed, from the top-level arguments or the `input` object.
fn call_args(op: &Op, args: &ObjectAccessor<'_>) -> HashMap<&'static str, String> {
    op.args
        .iter()
        .filter_map(|(name, _)| arg_string(args, name).map(|value| (*name, value)))
        .collect()
}

fn mutation_field(op: &'static Op, variant: Variant) -> (Field, Object, Option<InputObject>) {
    let payload_name = match variant {
        Variant::Classic => op.base.to_string(),
        Variant::Relay => format!("{}Payload", op.base),
    };
    let mut payload = Object::new(payload_name.clone())
        .field(payload_field("success", TypeRef::named(TypeRef::BOOLEAN)))
        .field(payload_field("errors", TypeRef::named("ExpectedErrorType")));
    for (name, ty) in op.outputs {
        payload = payload.field(payload_field(name, out_type(*ty)));
    }
    let mut field = Field::new(op.field, TypeRef::named(payload_name), move |ctx| {
        FieldFuture::new(async move {
            let state = state(&ctx)?.clone();
            let (args, client_mutation_id) = match variant {
                Variant::Classic => (call_args(op, &ctx.args), None),
                Variant::Relay => {
                    let input = ctx.args.try_get("input")?.object()?;
                    (
                        call_args(op, &input),
                        arg_string(&input, "clientMutationId"),
                    )
                }
            };
            let cookie = state.cookie.clone();
            let call = Call {
                state,
                caller: caller(&ctx),
                args,
            };
            let mut payload = (op.run)(call).await;
            payload.client_mutation_id = client_mutation_id;
            match payload.cookie.take() {
                Some(CookieChange::Set(pair)) => {
                    let max_age = pair.refresh_expires_at - crate::jwt::unix_now();
                    ctx.append_http_header("set-cookie", cookie.set(&pair.refresh_token, max_age));
                }
                Some(CookieChange::Clear) => {
                    ctx.append_http_header("set-cookie", cookie.clear());
                }
                None => {}
            }
            Ok(Some(FieldValue::owned_any(payload)))
        })
    });
    let input = match variant {
        Variant::Classic => {
            for (name, ty) in op.args {
                field = field.argument(InputValue::new(*name, arg_type(*ty)));
            }
            None
        }
        Variant::Relay => {
            payload = payload.field(payload_field(
                "clientMutationId",
                TypeRef::named(TypeRef::STRING),
            ));
            let input_name = format!("{}Input", op.base);
            let mut input = InputObject::new(input_name.clone());
            for (name, ty) in op.args {
                input = input.field(InputValue::new(*name, arg_type(*ty)));
            }
            input = input.field(InputValue::new(
                "clientMutationId",
                TypeRef::named(TypeRef::STRING),
            ));
            field = field.argument(InputValue::new("input", TypeRef::named_nn(input_name)));
            Some(input)
        }
    };
    (field, payload, input)
}

/// The whole schema of one variant, with the §10 limits.
pub(super) fn build(
    state: Arc<State>,
    variant: Variant,
    limits: &config::Graphql,
) -> Result<Schema, String> {
    let mut mutation = Object::new("Mutation");
    let mut types: Vec<Object> = Vec::new();
    let mut inputs: Vec<InputObject> = Vec::new();
    for op in OPS {
        let (field, payload, input) = mutation_field(op, variant);
        mutation = mutation.field(field);
        types.push(payload);
        inputs.extend(input);
    }
    let mut builder = Schema::build("Query", Some("Mutation"), None)
        .register(Scalar::new("ExpectedErrorType").description(
            "Errors of a mutation: {\"<field>\": [{\"message\", \"code\"}]}, nonFieldErrors for the rest",
        ))
        .register(Scalar::new("GenericScalar").description("The JWT claims as JSON"))
        .register(Scalar::new("DateTime").description("An RFC 3339 UTC timestamp"))
        .register(
            Interface::new("Node")
                .description("An object with an ID")
                .field(InterfaceField::new("id", TypeRef::named_nn(TypeRef::ID))),
        )
        .register(user_node())
        .register(api_key_type())
        .register(query())
        .register(mutation)
        .data(state)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity);
    for object in connection_types().into_iter().chain(types) {
        builder = builder.register(object);
    }
    for input in inputs {
        builder = builder.register(input);
    }
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    builder
        .finish()
        .map_err(|e| format!("the django schema is invalid: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_are_graphenes() {
        let mut user = crate::accounts::User {
            id: "0193abc".into(),
            email: "a@b.co".into(),
            username: None,
            first_name: String::new(),
            last_name: String::new(),
            password_hash: None,
            is_active: true,
            is_staff: false,
            verified: false,
            archived: false,
            secondary_email: None,
            roles: vec![],
            date_joined: 0,
            last_login: None,
            security_stamp: String::new(),
            serial: Some(5),
            standing_key: None,
            totp: None,
        };
        assert_eq!(global_id(&user), "VXNlck5vZGU6NQ==");
        assert!(matches!(user_ref("VXNlck5vZGU6NQ=="), UserRef::Serial(5)));
        user.serial = None;
        assert!(matches!(user_ref(&global_id(&user)), UserRef::Id(id) if id == "0193abc"));
        assert!(matches!(user_ref("0193abc"), UserRef::Id(id) if id == "0193abc"));
        assert_eq!(offset_of(&cursor(3)), Some(3));
        assert_eq!(cursor(0), "YXJyYXljb25uZWN0aW9uOjA=");
    }
}
