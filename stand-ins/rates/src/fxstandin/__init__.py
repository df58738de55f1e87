"""A development stand-in for an exchange-rates provider, speaking Frankfurter's API."""

from fxstandin.http_api import Behaviour, create_app
from fxstandin.rates import CURRENCY_NAMES, PER_US_DOLLAR, rates_for
from fxstandin.server import RatesStandIn
from fxstandin.settings import StandInSettings

__all__ = [
    "CURRENCY_NAMES",
    "PER_US_DOLLAR",
    "Behaviour",
    "RatesStandIn",
    "StandInSettings",
    "create_app",
    "rates_for",
]
