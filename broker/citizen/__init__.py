"""The citizen's side: sign-in (OpenID Connect, or the development sign-in), the data cockpit,
and the pages where the citizen decides previews and consents."""
