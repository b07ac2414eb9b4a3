"""Signing in and out, throttled sign-in, password change and reset at /accounts/."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from frontend import throttle

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


@pytest.fixture(autouse=True)
def _few_attempts(settings: Any) -> None:
    settings.ROOST_LOGIN_ATTEMPTS = 3


def _sign_in(client: Client, username: str, password: str, **extra: Any) -> Any:
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_the_sign_in_page_is_a_csrf_protected_form() -> None:
    response = Client().get(LOGIN)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'name="csrfmiddlewaretoken"' in body and '<label for="id_username">' in body
    strict = Client(enforce_csrf_checks=True)
    assert _sign_in(strict, "alice", "alice-password-1").status_code == 403


def test_signing_in_leads_to_the_portal(alice: Any) -> None:
    client = Client()
    response = _sign_in(client, "alice", "alice-password-1")
    assert response.status_code == 302 and response["Location"] == "/portal/"
    assert _signed_in(client)


def test_signing_in_returns_to_the_page_that_asked_for_it(alice: Any) -> None:
    client = Client()
    response = client.post(f"{LOGIN}?next=/portal/t/acme/devices/",
                           {"username": "alice", "password": "alice-password-1", "next": "/portal/t/acme/devices/"})
    assert response["Location"] == "/portal/t/acme/devices/"


def test_a_wrong_password_re_renders_the_form_with_an_error(alice: Any) -> None:
    client = Client()
    response = _sign_in(client, "alice", "wrong")
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert not _signed_in(client)


def test_too_many_failures_refuse_even_the_right_password_for_a_while(alice: Any) -> None:
    client = Client()
    for _ in range(3):
        _sign_in(client, "alice", "wrong")
    response = _sign_in(client, "alice", "alice-password-1")
    assert response.status_code == 200
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert not _signed_in(client)


def test_the_throttle_counts_per_user_name(alice: Any, bob: Any) -> None:
    client = Client()
    for _ in range(3):
        _sign_in(client, "ALICE", "wrong")  # user names are counted case-insensitively
    assert "Too many" in _sign_in(client, "alice", "alice-password-1").content.decode()
    assert _sign_in(client, "bob", "bob-password-1").status_code == 302


def test_the_throttle_counts_per_client_address(alice: Any) -> None:
    for _ in range(3):
        _sign_in(Client(), "alice", "wrong", REMOTE_ADDR="10.0.0.1")
    assert "Too many" in _sign_in(Client(), "alice", "alice-password-1", REMOTE_ADDR="10.0.0.1").content.decode()
    assert _sign_in(Client(), "alice", "alice-password-1", REMOTE_ADDR="10.0.0.2").status_code == 302


def test_fewer_failures_than_the_limit_still_let_the_right_password_in(alice: Any) -> None:
    client = Client()
    for _ in range(2):
        _sign_in(client, "alice", "wrong")
    assert _sign_in(client, "alice", "alice-password-1").status_code == 302


def test_the_throttle_lifts_when_its_window_has_passed(alice: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(throttle, "WINDOW_SECONDS", 1)
    client = Client()
    for _ in range(3):
        _sign_in(client, "alice", "wrong")
    assert "Too many" in _sign_in(client, "alice", "alice-password-1").content.decode()
    time.sleep(1.2)
    assert _sign_in(client, "alice", "alice-password-1").status_code == 302


def test_signing_out_takes_a_post(alice: Any) -> None:
    client = Client()
    client.force_login(alice)
    assert client.get("/accounts/logout/").status_code == 405
    assert _signed_in(client)
    response = client.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == LOGIN
    assert not _signed_in(client)
    assert client.get("/portal/t/acme/")["Location"].startswith(LOGIN)


def test_signing_out_needs_the_csrf_token(alice: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post("/accounts/logout/").status_code == 403
    assert _signed_in(client)


def test_the_password_change_page_asks_to_sign_in_first() -> None:
    response = Client().get("/accounts/password/change/")
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)


def test_a_user_changes_their_password(alice: Any) -> None:
    client = Client()
    client.force_login(alice)
    response = client.post("/accounts/password/change/", {
        "old_password": "alice-password-1", "new_password1": "a-new-long-secret-9", "new_password2": "a-new-long-secret-9"})
    assert response.status_code == 302 and response["Location"] == "/accounts/password/change/done/"
    alice.refresh_from_db()
    assert alice.check_password("a-new-long-secret-9")


def test_a_wrong_old_password_changes_nothing(alice: Any) -> None:
    client = Client()
    client.force_login(alice)
    response = client.post("/accounts/password/change/", {
        "old_password": "nope", "new_password1": "a-new-long-secret-9", "new_password2": "a-new-long-secret-9"})
    assert response.status_code == 200 and "Your old password was entered incorrectly" in response.content.decode()
    alice.refresh_from_db()
    assert alice.check_password("alice-password-1")


def test_a_password_reset_mails_a_link_that_sets_a_new_password(alice: Any) -> None:
    alice.email = "alice@example.com"
    alice.save()
    client = Client()
    response = client.post("/accounts/password/reset/", {"email": "alice@example.com"})
    assert response.status_code == 302 and response["Location"] == "/accounts/password/reset/sent/"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["alice@example.com"]
    link = re.search(r"http://testserver(/accounts/password/reset/\S+/)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200 and "Choose a new password" in form_page.content.decode()
    response = client.post(form_page.redirect_chain[-1][0], {
        "new_password1": "reset-long-secret-7", "new_password2": "reset-long-secret-7"})
    assert response.status_code == 302 and response["Location"] == "/accounts/password/reset/done/"
    alice.refresh_from_db()
    assert alice.check_password("reset-long-secret-7")


def test_a_password_reset_for_an_unknown_address_sends_nothing_and_says_the_same(alice: Any) -> None:
    response = Client().post("/accounts/password/reset/", {"email": "nobody@example.com"})
    assert response.status_code == 302 and response["Location"] == "/accounts/password/reset/sent/"
    assert mail.outbox == []


def test_account_pages_use_the_portal_layout() -> None:
    for path in (LOGIN, "/accounts/password/reset/", "/accounts/password/reset/sent/"):
        body = Client().get(path).content.decode()
        assert "frontend/dist/portal.css" in body, path
