"""A use case's refusal (a code and parameters) worded from the catalogue for a command's
reply."""

from __future__ import annotations

from bot.telegram.services import Services
from funnels.kernel.refusals import Refused

MAX_CAPACITY = 200_000  # Telegram's largest group


_COMMON = {
    "none": "status.none",
    "leader_only": "leader.only",
    "already": "pause.already",
    "not_running": "pause.not_running",
    "not_paused": "resume.not_paused",
    "not_admin": "grant.not_admin",
    "unknown_region": "grant.unknown_region",
}


def refusal_text(services: Services, locale: str, refused: Refused, keys: dict[str, str]) -> str:
    params = dict(refused.params)
    if "missing" in params:
        missing = params.pop("missing")
        assert isinstance(missing, tuple)
        params["missing"] = services.renderer.rights(locale, missing)
        if refused.code == "missing_rights":
            return services.text(locale, "launch.missing_rights", **params)
        return services.text(locale, "resume.still_missing", **params)
    if "currency" in params:  # amounts come in minor units: worded here, in the locale
        currency = str(params.pop("currency"))
        for name in ("needed", "budget"):
            params[name] = services.catalog.money(locale, int(str(params[name])), currency)
    if refused.code == "bad_capacity":
        params["max"] = MAX_CAPACITY
    key = keys.get(refused.code) or _COMMON.get(refused.code) or "error.generic"
    return services.text(locale, key, **params)
