"""harmonize: Harmonizing output imbalance for semantic segmentation on extremely-imbalanced input data
(Yi, Zhong, Liu, Wu, Deng; arXiv 2211.05295; v4 title: "Harmonizing output imbalance for defect segmentation on
extremely-imbalanced photovoltaic module cells images").

Component -> file map (spec ../shared/specs/harmonize.md, section 2):
  confusion counts, output-imbalance measures ........ imbalance.py
  loss family, wCE generalisation, compound loss ..... loss.py
  adaptive selector (bisection, online) .............. selector.py
  TinyUNet, smp architectures ........................ model.py
  EL-cell generator, real image/mask folders ......... data.py
  metrics (IoU, F1, OI, oracle-threshold F1) ......... evaluate.py
"""

from tenfold.core.registry import SystemSpec
from tenfold.systems.harmonize.config import PROFILES, Config


def _train(cfg, run_dir):
    from tenfold.systems.harmonize.train import train

    return train(cfg, run_dir)


def _evaluate(cfg, run_dir):
    from tenfold.systems.harmonize.evaluate import evaluate

    return evaluate(cfg, run_dir)


def _reproduce(profile, seed, out_dir):
    from tenfold.systems.harmonize.reproduce import reproduce

    return reproduce(profile, seed, out_dir)


SPEC = SystemSpec(
    key="harmonize",
    title="Harmonizing output imbalance for semantic segmentation on extremely-imbalanced input data",
    arxiv="2211.05295",
    config_cls=Config,
    profiles=PROFILES,
    train=_train,
    evaluate=_evaluate,
    reproduce=_reproduce,
    reproduce_minutes=10.0,
)
