//! The password reset page in a real headless Chromium: open the emailed link, make a mistake,
//! fix it, see the result, then log in with the new password.

use crate::common::smtp::SmtpSink;
use crate::common::webdriver::Browser;
use crate::common::*;
use serde_json::json;

const PASSWORD: &str = "vX9!kq2#Lm-7";
const NEW_PASSWORD: &str = "Browser-Chosen-Pass-9";

#[tokio::test]
async fn reset_password_in_a_real_browser() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let sink = SmtpSink::start().await;
    let gate = Authgate::builder()
        .smtp(&sink)
        .env("AUTHGATE_RATE_LIMIT__EMAIL", "1000/1h")
        .start(None)
        .await;
    let login = "mutation L($p: String!) { tokenAuth(email: \"web@example.com\", password: $p) { success errors } }";

    gate.graphql_as(
        "mutation { register(email: \"web@example.com\", password1: \"vX9!kq2#Lm-7\", password2: \"vX9!kq2#Lm-7\") { success } }",
        json!({}),
        None,
    )
    .await;
    verify_by_mail(&gate, &sink, "web@example.com", 1).await;
    gate.graphql_as(
        "mutation { sendPasswordResetEmail(email: \"web@example.com\") { success } }",
        json!({}),
        None,
    )
    .await;
    let link = sink
        .wait_for("web@example.com", 2)
        .await
        .link("/password/reset?token=")
        .expect("a reset link");

    browser.goto(&link).await;
    assert_eq!(browser.text("h1").await, "Choose a new password");
    // A mismatch: the page says so and the form is still there.
    browser.type_into("#new_password1", NEW_PASSWORD).await;
    browser.type_into("#new_password2", "something else").await;
    browser.click("#submit").await;
    let error = browser.text("li.error").await;
    assert!(error.contains("match"), "{error}");
    browser.type_into("#new_password1", NEW_PASSWORD).await;
    browser.type_into("#new_password2", NEW_PASSWORD).await;
    browser.click("#submit").await;
    assert_eq!(
        browser.text_once("h1", "Password changed").await,
        "Password changed"
    );
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG") && png.len() > 1024);
    std::fs::write(gate.dir.path().join("reset-done.png"), &png).unwrap();

    // The link is spent; the new password works, the old one does not.
    browser.goto(&link).await;
    assert_eq!(
        browser.text_once("h1", "Invalid link").await,
        "Invalid link"
    );
    browser.quit().await;
    let new = gate
        .graphql_as(login, json!({"p": NEW_PASSWORD}), None)
        .await;
    assert_eq!(new["data"]["tokenAuth"]["success"], true, "{new}");
    let old = gate.graphql_as(login, json!({"p": PASSWORD}), None).await;
    assert_eq!(
        old["data"]["tokenAuth"]["errors"]["nonFieldErrors"][0]["code"],
        "invalid_credentials"
    );
}
