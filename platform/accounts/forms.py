"""Web forms. They check the shape of the input; the services check the rules (and say why not)."""

from django import forms
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from accounts.models import ApiKeyScope, Role, User

# One label for an address on every account form (Django's own word, which its forms use too).
EMAIL_LABEL = _("Email")


def check_new_password(form: forms.Form, *, user, field1: str, field2: str) -> None:
    """Strength problems on the first field and a mismatch on the second, reported together.
    (Django's set-password forms check strength on the confirmation field only, which a mismatch
    has already removed, so a short mismatched pair reported just the mismatch.)"""
    password, again = form.cleaned_data.get(field1), form.cleaned_data.get(field2)
    if password:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            form.add_error(field1, exc)
    if password and again and password != again:
        form.add_error(field2, _("The two passwords differ."))


class EmailAuthenticationForm(AuthenticationForm):
    """Sign-in by e-mail, whatever its case (addresses are stored lower-cased)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # AuthenticationForm labels the field with the model field's untranslated verbose name.
        self.fields["username"].label = EMAIL_LABEL

    def clean_username(self):
        return (self.cleaned_data.get("username") or "").strip().lower()


class SignUpForm(forms.Form):
    email = forms.EmailField(
        label=EMAIL_LABEL, widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )
    full_name = forms.CharField(label=_("Full name"), max_length=150, required=False)
    password1 = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("At least 10 characters, not too common, not all digits, not like your email."),
    )
    password2 = forms.CharField(
        label=_("Password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self):
        cleaned = super().clean()
        # The would-be user, so the similarity check compares the password with this address and name.
        user = User(email=(cleaned.get("email") or "").lower(), full_name=cleaned.get("full_name") or "")
        check_new_password(self, user=user, field1="password1", field2="password2")
        return cleaned


class PasswordChangeForm(auth_forms.PasswordChangeForm):
    def clean(self):
        check_new_password(self, user=self.user, field1="new_password1", field2="new_password2")
        return forms.Form.clean(self)


class SetPasswordForm(auth_forms.SetPasswordForm):
    """The new password after a reset link, checked like the others."""

    def clean(self):
        check_new_password(self, user=self.user, field1="new_password1", field2="new_password2")
        return forms.Form.clean(self)


class TeamForm(forms.Form):
    name = forms.CharField(label=_("Team name"), max_length=100)


class InvitationForm(forms.Form):
    email = forms.EmailField(label=EMAIL_LABEL)
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.MEMBER)

    def __init__(self, *args, allowed_roles: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if allowed_roles is not None:
            self.fields["role"].choices = [
                (value, label) for value, label in Role.choices if value in allowed_roles
            ]


class RoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)


EXPIRY_CHOICES = [
    ("", _("Never")),
    ("7", _("In 7 days")),
    ("30", _("In 30 days")),
    ("90", _("In 90 days")),
    ("365", _("In a year")),
]


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        label=_("Name"), max_length=50, help_text=_("What uses this key, e.g. “nightly eval”.")
    )
    scopes = forms.MultipleChoiceField(
        label=_("Scopes"),
        choices=ApiKeyScope.choices,
        initial=[ApiKeyScope.READ, ApiKeyScope.INFERENCE],
        widget=forms.CheckboxSelectMultiple,
        help_text=_("read: list and view; write: create and change; inference: call models."),
        error_messages={"required": _("Choose at least one scope.")},
    )
    expires_in_days = forms.TypedChoiceField(
        label=_("Expires"), choices=EXPIRY_CHOICES, required=False, coerce=int, empty_value=None
    )
    endpoints = forms.MultipleChoiceField(
        label=_("Endpoints"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: every endpoint of the team. Tick some to let the key call only those."),
    )

    def __init__(self, *args, endpoint_slugs: list[str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # Only this team's endpoints are choices, so another team's slug is refused next to the field.
        if endpoint_slugs:
            self.fields["endpoints"].choices = [(slug, slug) for slug in endpoint_slugs]
        else:
            del self.fields["endpoints"]
