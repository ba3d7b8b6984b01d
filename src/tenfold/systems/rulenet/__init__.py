"""rulenet: Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning
(Li, Huang, Zhou, Fu, Qiao, He; arXiv 2211.04693). Reconstruction from the abstract (specs/rulenet.md).

Component -> file map (spec section 2):
  ObservationGraph ......................... graph.py
  DataAssessingModel, KeyFeatureExtractor,
  RuleNetwork .............................. model.py
  DerivedFeatures, RuleSet parser .......... rules.py
  gradient linking (none/ste/graft/search) . linking.py
  losses ................................... loss.py
  export_rules, explain .................... export.py
  DeepEnsemble and peers ................... baselines.py
  scikit-learn style estimator ............. estimator.py
  AI4I-style generator, real-format reader . data.py
"""

from tenfold.core.registry import SystemSpec
from tenfold.systems.rulenet.config import PROFILES, Config


def _train(cfg, run_dir):
    from tenfold.systems.rulenet.train import train

    return train(cfg, run_dir)


def _evaluate(cfg, run_dir):
    from tenfold.systems.rulenet.evaluate import evaluate

    return evaluate(cfg, run_dir)


def _reproduce(profile, seed, out_dir):
    from tenfold.systems.rulenet.reproduce import reproduce

    return reproduce(profile, seed, out_dir)


SPEC = SystemSpec(
    key="rulenet",
    title="Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning",
    arxiv="2211.04693",
    config_cls=Config,
    profiles=PROFILES,
    train=_train,
    evaluate=_evaluate,
    reproduce=_reproduce,
    reproduce_minutes=10.0,
)
