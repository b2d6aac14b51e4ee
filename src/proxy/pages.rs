//! authgate's HTML pages over HTTP: activation and secondary-email links, and the
//! password reset / set forms. The account logic decides; [`crate::pages`] renders.

use crate::accounts::{Accounts, Failure, Purpose};
use crate::pages;

use crate::reply::Reply;

fn page(status: u16, html: String) -> Reply {
    Reply::new(status, "text/html; charset=utf-8", html)
        .with_header("x-frame-options", "DENY")
        .with_header(
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
        )
        .with_header("referrer-policy", "no-referrer")
}

fn result(status: u16, title: &str, message: &str, ok: bool) -> Reply {
    page(status, pages::result(title, message, ok))
}

/// The page for a failed link, by the failure's code.
fn link_failure(failure: &Failure, what: &str) -> Reply {
    match failure.codes().first().copied() {
        Some("expired_token") => result(
            400,
            "Link expired",
            &format!("This {what} link has expired. Ask for a new one."),
            false,
        ),
        Some("service_unavailable") => result(
            503,
            "Try again shortly",
            "The service is temporarily unavailable.",
            false,
        ),
        _ => result(
            400,
            "Invalid link",
            &format!("This {what} link is not valid (or was already used). Check that you copied it whole."),
            false,
        ),
    }
}

pub async fn activate(accounts: &Accounts, token: &str) -> Reply {
    match accounts.verify_account(token).await {
        Ok(_) => result(
            200,
            "Account verified",
            "Your email address is confirmed. You can close this page and sign in.",
            true,
        ),
        Err(f) if f.codes() == ["already_verified"] => result(
            200,
            "Already verified",
            "This account is already verified. You can sign in.",
            true,
        ),
        Err(f) => link_failure(&f, "activation"),
    }
}

pub async fn verify_email(accounts: &Accounts, token: &str) -> Reply {
    match accounts.verify_secondary_email(token).await {
        Ok(()) => result(
            200,
            "Email confirmed",
            "This address is now the secondary email of your account.",
            true,
        ),
        Err(f) if f.codes() == ["already_verified"] => result(
            200,
            "Already confirmed",
            "This address is already confirmed.",
            true,
        ),
        Err(f) if f.codes() == ["unique"] => result(
            400,
            "Address taken",
            "This address now belongs to another account.",
            false,
        ),
        Err(f) => link_failure(&f, "confirmation"),
    }
}

fn titles(purpose: Purpose) -> (&'static str, &'static str, &'static str) {
    match purpose {
        Purpose::PasswordSet => ("Choose your password", "/password/set", "Password set"),
        _ => (
            "Choose a new password",
            "/password/reset",
            "Password changed",
        ),
    }
}

/// `GET /password/reset?token=…` and `/password/set?token=…`: the form, if the link is good.
pub async fn password_form(
    accounts: &Accounts,
    purpose: Purpose,
    query: &str,
    min_length: usize,
) -> Reply {
    let token = field(&pages::form_fields(query), "token");
    match accounts.password_token_user(&token, purpose).await {
        Ok(user) if purpose == Purpose::PasswordSet && user.password_hash.is_some() => result(
            400,
            "Password already set",
            "This account already has a password. Use “forgot password” to change it.",
            false,
        ),
        Ok(_) => {
            let (title, action, _) = titles(purpose);
            page(
                200,
                pages::password_form(title, action, &token, &[], min_length),
            )
        }
        Err(f) => link_failure(&f, "password"),
    }
}

/// The form's POST: sets the password, or shows the form again with what is wrong.
pub async fn password_submit(
    accounts: &Accounts,
    purpose: Purpose,
    body: &[u8],
    min_length: usize,
) -> Reply {
    let fields = pages::form_fields(&String::from_utf8_lossy(body));
    let token = field(&fields, "token");
    let (title, action, done) = titles(purpose);
    match accounts
        .reset_password(
            &token,
            purpose,
            field(&fields, "new_password1"),
            field(&fields, "new_password2"),
        )
        .await
    {
        Ok(()) => result(
            200,
            done,
            "You can now sign in with your new password.",
            true,
        ),
        Err(f)
            if f.codes()
                .iter()
                .any(|c| ["invalid_token", "expired_token", "service_unavailable"].contains(c)) =>
        {
            link_failure(&f, "password")
        }
        Err(f) if f.codes() == ["password_already_set"] => result(
            400,
            "Password already set",
            "This account already has a password.",
            false,
        ),
        Err(f) => {
            let errors: Vec<String> = f.0.values().flatten().map(|e| e.message.clone()).collect();
            page(
                400,
                pages::password_form(title, action, &token, &errors, min_length),
            )
        }
    }
}

fn field(fields: &[(String, String)], name: &str) -> String {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.clone())
        .unwrap_or_default()
}
