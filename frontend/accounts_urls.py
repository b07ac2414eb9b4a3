"""Sign-in, sign-out, password change and reset at /accounts/: Django's auth views in the
portal's layout, sign-in throttled per user name and address (frontend/throttle.py)."""

from __future__ import annotations

from django.contrib.auth import views as auth
from django.urls import path

from .forms import ThrottledAuthenticationForm

T = "frontend/accounts/"

urlpatterns = [
    path("login/", auth.LoginView.as_view(template_name=T + "login.html",
                                          authentication_form=ThrottledAuthenticationForm,
                                          redirect_authenticated_user=True), name="login"),
    # Django's LogoutView answers only POST (405 otherwise), so a link or an image cannot sign anyone out.
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    path("password/change/", auth.PasswordChangeView.as_view(template_name=T + "password_change.html"),
         name="password_change"),
    path("password/change/done/", auth.PasswordChangeDoneView.as_view(template_name=T + "password_change_done.html"),
         name="password_change_done"),
    path("password/reset/", auth.PasswordResetView.as_view(
        template_name=T + "password_reset.html", email_template_name=T + "password_reset_email.txt",
        subject_template_name=T + "password_reset_subject.txt"), name="password_reset"),
    path("password/reset/sent/", auth.PasswordResetDoneView.as_view(template_name=T + "password_reset_sent.html"),
         name="password_reset_done"),
    path("password/reset/<uidb64>/<token>/", auth.PasswordResetConfirmView.as_view(
        template_name=T + "password_reset_confirm.html"), name="password_reset_confirm"),
    path("password/reset/done/", auth.PasswordResetCompleteView.as_view(
        template_name=T + "password_reset_done.html"), name="password_reset_complete"),
]
