"""doorping: Backdoor Attacks Against Dataset Distillation (Liu, Li, Backes, Shen, Zhang; NDSS 2023;
arXiv 2301.01197).

Component -> file map (spec ../shared/specs/doorping.md, section 2):
  poison_subset, trigger_mask, stamp, data sets ..... data.py
  NaiveAttack, DoorpingTrigger, InvisibleTrigger .... attack.py
  ConvNet, ConvNetMini, AlexNet ..................... model.py
  gradient_match_distance, DM distance .............. loss.py
  DatasetCondensation (DC, DSA), DM ................. distill_dc.py
  DatasetDistillation (DD) .......................... distill_dd.py
  evaluate_synset (victims, CTA, ASR) ............... evaluate.py
  defenses (Neural Cleanse, STRIP, fine-pruning) .... defense.py
"""

from tenfold.core.registry import SystemSpec
from tenfold.systems.doorping.config import PROFILES, Config


def _train(cfg, run_dir):
    from tenfold.systems.doorping.train import train

    return train(cfg, run_dir)


def _evaluate(cfg, run_dir):
    from tenfold.systems.doorping.evaluate import evaluate

    return evaluate(cfg, run_dir)


def _reproduce(profile, seed, out_dir):
    from tenfold.systems.doorping.reproduce import reproduce

    return reproduce(profile, seed, out_dir)


SPEC = SystemSpec(
    key="doorping",
    title="Backdoor Attacks Against Dataset Distillation",
    arxiv="2301.01197",
    config_cls=Config,
    profiles=PROFILES,
    train=_train,
    evaluate=_evaluate,
    reproduce=_reproduce,
    reproduce_minutes=10.0,
)
