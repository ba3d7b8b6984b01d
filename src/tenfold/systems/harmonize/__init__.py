"""harmonize: Harmonizing output imbalance for semantic segmentation on extremely-imbalanced input data
(Yi, Zhong, Liu, Wu, Deng; arXiv 2211.05295; v4 title: "Harmonizing output imbalance for defect segmentation on
extremely-imbalanced photovoltaic module cells images").

Component -> file map (spec ../shared/specs/harmonize.md, section 2):
  confusion counts, output-imbalance measures ........ imbalance.py
  loss family, wCE generalisation, compound loss ..... loss.py
  adaptive selector (bisection, online) .............. selector.py
  TinyUNet, smp architectures ........................ model.py
  EL-cell generator, real image/mask folders ......... data.py
  metrics (IoU, F1, OI, oracle-threshold F1) ......... scoring.py
  splits, batched logits (train + evaluate) .......... scoring.py
  evaluation of a finished run (eval.json) ........... evaluate.py
"""

from tenfold.core.registry import SystemSpec, deferred
from tenfold.systems.harmonize.config import DEV_SEEDS, PROFILES, Config


SPEC = SystemSpec(
    key="harmonize",
    title="Harmonizing output imbalance for semantic segmentation on extremely-imbalanced input data",
    arxiv="2211.05295",
    config_cls=Config,
    profiles=PROFILES,
    train=deferred("tenfold.systems.harmonize.train", "train"),
    evaluate=deferred("tenfold.systems.harmonize.evaluate", "evaluate"),
    reproduce=deferred("tenfold.systems.harmonize.reproduce", "reproduce"),
    reproduce_minutes=15.0,
    dev_seeds=DEV_SEEDS,
    predict=deferred("tenfold.systems.harmonize.predict", "predict"),
)
