"""Synthetic labels from teachers: the transport layer (teachers, cache, ledger, limits, prices, batch APIs).

    from assay.curation.synth import Request, get_teacher, open_state, run_requests
    cache, ledger = open_state()
    replies = await run_requests(get_teacher("rule:lead"), [Request([{"role": "user", "content": note}])],
                                 cache=cache, ledger=ledger)

Tasks (templates + parsers), selection and the `assay synth` verb build on these names.
"""

from assay.curation.synth.bookkeeping import BudgetExceeded
from assay.curation.synth.cache import Cache, cache_key, cacheable
from assay.curation.synth.contract import (
    BATCH_DISCOUNT,
    FREE,
    MissingKeyError,
    Price,
    Reply,
    Request,
    Teacher,
    TeacherError,
)
from assay.curation.synth.ledger import Ledger, Spend, scrub
from assay.curation.synth.limits import Limits, LimitsConfig
from assay.curation.synth.prices import DEFAULT_PRICES, PriceTable, UnknownPriceError
from assay.curation.synth.registry import PROVIDERS, Provider, get_teacher
from assay.curation.synth.runner import Estimate, estimate, open_state, run_requests
from assay.curation.synth.teachers import RULES

__all__ = [
    "BATCH_DISCOUNT", "DEFAULT_PRICES", "FREE", "PROVIDERS", "RULES", "BudgetExceeded", "Cache", "Estimate",
    "Ledger", "Limits", "LimitsConfig", "MissingKeyError", "Price", "PriceTable", "Provider", "Reply", "Request",
    "Spend", "Teacher", "TeacherError", "UnknownPriceError", "cache_key", "cacheable", "estimate", "get_teacher",
    "open_state", "run_requests", "scrub",
]
