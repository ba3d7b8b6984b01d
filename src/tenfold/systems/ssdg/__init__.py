"""ssdg: Semi-Supervised Domain Generalization with Evolving Intermediate Domain (Lin, Xie, Sun, Chen, Liu, Yu,
Zhang; Pattern Recognition 2024; arXiv 2111.10221), as released in MetaVisionLab/SSDG with its two bugs fixed.

Component -> file map (spec ../shared/specs/ssdg.md, section 2):
  MixStyle, DigitsCNN, ResNet18Backbone, Classifier, MCDNet ........ model.py
  mixup, discrepancy, forget-rate ramp, co-teaching, IM ............. loss.py
  MCDPseudoLabeler (Phase 1) ........................................ pseudo_labeling.py
  CoTeachingDG (Phase 2) ............................................ generalization.py
  select_intermediate_domain (Phase 3) .............................. intermediate_domain.py
  StyleDigits-4, readers, per-sample record with labeled flag ....... data.py
  CyclicSSDG (the cyclic schedule) .................................. train.py
  ERM, ERM+MixStyle, NaivePL, FixMatch ............................. baselines.py
  train / evaluate / predict / reproduce ............................ train.py, evaluate.py, predict.py, reproduce.py
"""

from tenfold.core.registry import SystemSpec, deferred
from tenfold.systems.ssdg.config import DEV_SEEDS, PROFILES, Config

SPEC = SystemSpec(
    key="ssdg",
    title="Semi-Supervised Domain Generalization with Evolving Intermediate Domain",
    arxiv="2111.10221",
    config_cls=Config,
    profiles=PROFILES,
    train=deferred("tenfold.systems.ssdg.train", "train"),
    evaluate=deferred("tenfold.systems.ssdg.evaluate", "evaluate"),
    reproduce=deferred("tenfold.systems.ssdg.reproduce", "reproduce"),
    reproduce_minutes=15.0,
    dev_seeds=DEV_SEEDS,
    predict=deferred("tenfold.systems.ssdg.predict", "predict"),
)
