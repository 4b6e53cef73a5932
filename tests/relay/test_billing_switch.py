from __future__ import annotations

import pytest

from clearmaas.billing import Billing
from clearmaas.billing.disabled import DisabledBilling
from clearmaas.limits import Limiter
from clearmaas.limits.disabled import Unlimited
from clearmaas.relay.gateway import Gateway
from clearmaas.settings import load_settings


@pytest.mark.parametrize(("switch", "billing", "limits"), [("on", Billing, Limiter), ("off", DisabledBilling, Unlimited)])
def test_billing_switch_picks_the_money_path(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, switch: str, billing: type, limits: type
) -> None:
    monkeypatch.setenv("CLEARMAAS_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CLEARMAAS_BILLING", "true" if switch == "on" else "false")
    gateway = Gateway.from_settings(load_settings())
    assert isinstance(gateway.billing, billing)
    assert isinstance(gateway.limits, limits)
