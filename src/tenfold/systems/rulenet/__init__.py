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
  data preparation, predict, F1 / PR-AUC,
  split and summary metrics ................ pipeline.py
  staged training .......................... train.py
  evaluate, stability, churn ............... evaluate.py
  DeepEnsemble and peers ................... baselines.py
  scikit-learn style estimator ............. estimator.py
  tenfold predict rulenet .................. predict.py
  AI4I-style generator, real-format reader . data.py
"""

from tenfold.core.registry import SystemSpec, deferred
from tenfold.systems.rulenet.config import DEV_SEEDS, PROFILES, Config


SPEC = SystemSpec(
    key="rulenet",
    title="Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning",
    arxiv="2211.04693",
    config_cls=Config,
    profiles=PROFILES,
    train=deferred("tenfold.systems.rulenet.train", "train"),
    evaluate=deferred("tenfold.systems.rulenet.evaluate", "evaluate"),
    reproduce=deferred("tenfold.systems.rulenet.reproduce", "reproduce"),
    reproduce_minutes=10.0,
    dev_seeds=DEV_SEEDS,
    predict=deferred("tenfold.systems.rulenet.predict", "predict"),
)
