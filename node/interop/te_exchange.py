"""A python-threatexchange ``SignalExchangeAPI`` for a blindmatch HMA adapter, so an HMA
deployment (or the ``threatexchange`` CLI) reports its opinions on looked-up signals back to
blindmatch with the interface it already uses for every exchange.

Install ``threatexchange`` next to HMA and add this class to HMA's exchange types (HMA's
``SIGNAL_EXCHANGE_APIS`` setting / a python-threatexchange extension). ``fetch_iter`` yields
nothing: blindmatch never hands hashes out -- HMA's callers look uploads up through the
adapter's ``/m/lookup`` instead (``node/interop/hma_adapter.py``). ``report_opinion`` sends the
opinion to the adapter, which decides the content's open review cases.

This module needs ``threatexchange`` (and its ``requests``); nothing else in blindmatch does.
"""

from __future__ import annotations

import typing as t
from dataclasses import dataclass, field

import requests
from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.collab_config import CollaborationConfigWithDefaults
from threatexchange.exchanges.signal_exchange_api import SignalExchangeAPIWithSimpleUpdates
from threatexchange.signal_type.signal_base import SignalType


@dataclass
class _BlindmatchRequiredFields:
    adapter_url: str = field(
        metadata={"help": "the blindmatch HMA adapter, e.g. http://127.0.0.1:8720"}
    )


@dataclass
class BlindmatchCollabConfig(CollaborationConfigWithDefaults, _BlindmatchRequiredFields):
    timeout_s: float = field(default=30.0, metadata={"help": "per request"})


@dataclass
class BlindmatchSignalExchangeAPI(
    SignalExchangeAPIWithSimpleUpdates[
        BlindmatchCollabConfig, state.FetchCheckpointBase, state.FetchedSignalMetadata
    ]
):
    """Opinions on signals looked up through a blindmatch node go back as its decisions."""

    collab: BlindmatchCollabConfig

    @classmethod
    def get_name(cls) -> str:
        return "blindmatch"

    @staticmethod
    def get_config_cls() -> type[BlindmatchCollabConfig]:
        return BlindmatchCollabConfig

    @staticmethod
    def get_checkpoint_cls() -> type[state.FetchCheckpointBase]:
        return state.FetchCheckpointBase

    @staticmethod
    def get_record_cls() -> type[state.FetchedSignalMetadata]:
        return state.FetchedSignalMetadata

    @classmethod
    def for_collab(cls, collab: BlindmatchCollabConfig) -> BlindmatchSignalExchangeAPI:
        return cls(collab)

    def fetch_iter(
        self,
        _supported_signal_types: t.Sequence[type[SignalType]],
        checkpoint: state.FetchCheckpointBase | None,
    ) -> t.Iterator[
        state.FetchDelta[tuple[str, str], state.FetchedSignalMetadata, state.FetchCheckpointBase]
    ]:
        # Nothing to fetch, ever: the federation's hashes stay blinded on their holders.
        yield state.FetchDelta({}, state.FetchCheckpointBase())

    def report_opinion(
        self, s_type: type[SignalType], signal: str, opinion: state.SignalOpinion
    ) -> None:
        response = requests.post(
            self.collab.adapter_url.rstrip("/") + "/blindmatch/opinion",
            json={
                "signal_type": s_type.get_name(),
                "signal": signal,
                "category": opinion.category.name,
                "tags": sorted(opinion.tags),
            },
            timeout=self.collab.timeout_s,
        )
        if response.status_code >= 400:
            message = response.json().get("message", "") if response.content else ""
            raise ValueError(f"blindmatch adapter refused the opinion: {message}")
