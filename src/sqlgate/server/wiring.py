"""Glue between packages that do not know each other: masking rules for the proxy, grants for policy."""

from __future__ import annotations

from collections.abc import Mapping

from sqlgate.identity.principal import Principal
from sqlgate.policy.decide import Grant
from sqlgate.proxy.listener import GrantSource, SelectorFactory
from sqlgate.proxy.masking import MaskFunction, Selector
from sqlgate.services import Services


def mask_selectors(services: Services) -> SelectorFactory:
    """Mask rules -> column selector, with the deployment's key for the `hash` function."""
    def factory(rules: Mapping[str, str]) -> Selector:
        from sqlgate.policy.masking import selector_for  # noqa: PLC0415 - resolved once the policy package has it

        return selector_for(rules, key=services.deployment_id.encode())

    return factory


def grant_source(services: Services) -> GrantSource:
    """Approved, unexpired access requests of a principal on a database."""

    async def grants(principal: Principal, database: str) -> tuple[Grant, ...]:
        requests = getattr(services, "requests", None)
        if requests is None:
            return ()
        return tuple(await requests.active_grants(principal, database))

    return grants


__all__ = ["MaskFunction", "grant_source", "mask_selectors"]
