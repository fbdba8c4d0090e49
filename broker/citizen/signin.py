"""Signing citizens in: OpenID Connect (authorization code flow with PKCE, nonce and state) at
the configured provider, through Authlib; no token, JWKS or signature handling of our own.

Authlib's Starlette client keeps the flow's state, nonce and PKCE verifier in the session
cookie between the redirect and the callback, checks ``state``, exchanges the code with the
verifier, and validates the ID token (signature against the provider's JWKS, ``iss``, ``aud``,
``exp``, ``nonce``). The broker then requires ``auth_time`` and reads the level of assurance
from ``acr``. Every call to the provider (discovery, JWKS, token) goes through the egress
policy (:mod:`broker.egress`): it is an outbound call like any other.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.integrations.base_client import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.integrations.starlette_client import OAuth, StarletteOAuth2App
from joserfc.errors import JoseError
from starlette.requests import Request
from starlette.responses import Response

from adapters.protocol import Subject
from broker.citizen.identity import CLOCK_SKEW, ClaimMapping, ClaimsUnusable, assurance_of_acr, subject_of_claims
from broker.egress import EgressPolicy, GuardedTransport
from broker.registry.schemas import AssuranceLevel
from broker.settings import Settings

_CALL_TIMEOUT = httpx.Timeout(10.0)


class SignInFailed(Exception):
    """The sign-in did not yield a citizen; ``reason`` is a stable code for the page and the log."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SignedIn:
    """What a sign-in established about the citizen; the claims themselves are not kept."""

    claims: Mapping[str, Any]
    assurance: AssuranceLevel | None
    authenticated_at: datetime.datetime


def _guarded_client_class(policy: EgressPolicy) -> type[AsyncOAuth2Client]:
    class GuardedOAuth2Client(AsyncOAuth2Client):
        """Authlib's client, each instance with its own guarded transport (Authlib closes the
        client, and with it the transport, after every call)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("timeout", _CALL_TIMEOUT)
            super().__init__(*args, transport=GuardedTransport(policy), follow_redirects=False, **kwargs)

    return GuardedOAuth2Client


# The development sign-in's demo citizens (as in the demo registers): the specimen citizen, with
# and without her IDNr (as name-only requests know her), and one of the register's name twins.
DEMO_CITIZENS: dict[str, tuple[str, Subject]] = {
    "erika": (
        "Erika Mustermann, geb. 12.08.1964 in Schwerin (mit Identifikationsnummer)",
        Subject(
            idnr="12345678995",
            family_name="Mustermann",
            given_name="Erika",
            birth_date=datetime.date(1964, 8, 12),
            birth_place="Schwerin",
        ),
    ),
    "erika-ohne-idnr": (
        "Erika Mustermann, geb. 12.08.1964 in Schwerin (ohne Identifikationsnummer)",
        Subject(family_name="Mustermann", given_name="Erika", birth_date=datetime.date(1964, 8, 12)),
    ),
    "jan-schulz": (
        "Jan Schulz, geb. 01.01.1990 in Schwerin",
        Subject(family_name="Schulz", given_name="Jan", birth_date=datetime.date(1990, 1, 1), birth_place="Schwerin"),
    ),
}


@dataclass(frozen=True)
class CitizenAccess:
    """How citizens sign in to this broker, built once per process."""

    # None: the development sign-in (only with BROKER_ENV=development; the pages show a banner).
    oidc: OidcSignIn | None
    # Seeing and deciding about evidence needs an authentication at most this old.
    max_auth_age: datetime.timedelta
    # A session ends this long after the sign-in, however often it is used.
    session_lifetime: datetime.timedelta

    @property
    def development(self) -> bool:
        return self.oidc is None


class OidcSignIn:
    """The OpenID Connect relying party of the citizens' pages, built once per process."""

    def __init__(self, settings: Settings, policy: EgressPolicy) -> None:
        policy.check_url(settings.oidc_issuer)  # fail at start-up, not at the first citizen
        client_class = _guarded_client_class(policy)

        class CitizenApp(StarletteOAuth2App):
            client_cls = client_class

        self._issuer = settings.oidc_issuer.rstrip("/")
        registry = OAuth()
        self._app: StarletteOAuth2App = registry.register(
            "citizen",
            client_cls=CitizenApp,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            server_metadata_url=f"{self._issuer}/.well-known/openid-configuration",
            client_kwargs={"scope": settings.oidc_scopes, "code_challenge_method": "S256"},
        )
        self._levels = dict(settings.oidc_acr_levels)
        self._acr_of_level = {level: acr for acr, level in self._levels.items()}
        self._max_age = settings.citizen_max_auth_age_seconds
        self.mapping = ClaimMapping(
            family_name=settings.oidc_claim_family_name,
            given_name=settings.oidc_claim_given_name,
            birth_date=settings.oidc_claim_birth_date,
            birth_place=settings.oidc_claim_birth_place,
            idnr=settings.oidc_claim_idnr,
            person_identifier=settings.oidc_claim_person_identifier,
        )

    async def begin(self, request: Request, redirect_uri: str, wanted: AssuranceLevel | None) -> Response:
        """The redirect to the provider. ``max_age`` makes it authenticate the citizen anew when
        their last authentication there is older than the broker accepts; ``acr_values`` asks
        for the level the page needs (the broker checks the ``acr`` it gets either way)."""
        extra: dict[str, Any] = {"max_age": self._max_age}
        if wanted is not None and wanted in self._acr_of_level:
            extra["acr_values"] = self._acr_of_level[wanted]
        try:
            response: Response = await self._app.authorize_redirect(request, redirect_uri, **extra)
        except (httpx.HTTPError, OAuthError, ValueError, KeyError) as error:
            raise SignInFailed("citizen.provider_unavailable", f"Identity provider unreachable: {error}") from error
        return response

    async def finish(self, request: Request, now: datetime.datetime) -> SignedIn:
        """The callback: the code exchanged, the ID token validated; raises :class:`SignInFailed`."""
        if request.query_params.get("error"):
            raise SignInFailed("citizen.signin_cancelled", "The identity provider did not sign the citizen in.")
        try:
            token = await self._app.authorize_access_token(
                request,
                claims_options={
                    "iss": {"essential": True, "values": [self._issuer]},
                    "auth_time": {"essential": True},
                },
            )
        except httpx.HTTPError as error:
            raise SignInFailed("citizen.provider_unavailable", f"Identity provider unreachable: {error}") from error
        except (OAuthError, JoseError, ValueError, KeyError, TypeError) as error:
            # A replayed or forged callback (unknown state), a refused code, an invalid ID token.
            raise SignInFailed("citizen.signin_invalid", f"The sign-in could not be completed: {error}") from error
        claims = token.get("userinfo")
        if not isinstance(claims, Mapping):
            raise SignInFailed("citizen.signin_invalid", "The identity provider sent no ID token.")
        try:
            authenticated_at = datetime.datetime.fromtimestamp(int(claims["auth_time"]), tz=datetime.UTC)
        except (KeyError, TypeError, ValueError, OverflowError):
            raise SignInFailed("citizen.signin_invalid", "The ID token states no usable auth_time.") from None
        if authenticated_at - now > CLOCK_SKEW:
            # An authentication in the future would never count as old.
            raise SignInFailed("citizen.signin_invalid", "The ID token's auth_time lies in the future.")
        try:
            subject_of_claims(claims, self.mapping)  # the claims must identify someone
        except ClaimsUnusable as unusable:
            raise SignInFailed(unusable.reason, str(unusable)) from None
        return SignedIn(dict(claims), assurance_of_acr(claims.get("acr"), self._levels), authenticated_at)
