"""`baton eval`: compare variants of a sub-task (model, provider, prompt version, temperature,
max tokens) on a dataset, with the code that runs in production.

The public face, for the CLI and the API's "Compare":

    config = EvalConfig(definition_file=..., definition=..., dataset_file=..., state="Outline",
                        variants=[Variant("small", model="smollm2"), Variant("big", model="smollm2-b")])
    report = run_eval(config)            # or `await evaluate(config)` inside an event loop
    print(report.table())

Pure parts: `dataset`, `variants`, `scorers`, `config`, `records`, `report`; I/O: `runner`, `store`.
"""

from orchestrator.evaluation.config import EvalConfig, EvalFile, parse_eval_file
from orchestrator.evaluation.dataset import Item, parse_dataset
from orchestrator.evaluation.errors import (
    DatasetError,
    EvalError,
    JudgeError,
    RunNotFound,
    ScorerError,
    VariantError,
)
from orchestrator.evaluation.report import ItemRecord
from orchestrator.evaluation.runner import EvalReport, evaluate, run_eval
from orchestrator.evaluation.scorers import JudgeSpec, ScorerSpec
from orchestrator.evaluation.variants import Variant

__all__ = [
    "DatasetError", "EvalConfig", "EvalError", "EvalFile", "EvalReport", "Item", "ItemRecord", "JudgeError",
    "JudgeSpec", "RunNotFound", "ScorerError", "ScorerSpec", "Variant", "VariantError", "evaluate",
    "parse_dataset", "parse_eval_file", "run_eval",
]
