"""fctl: Ultra-high Resolution Image Segmentation via Locality-aware Context Fusion and Alternating Local
Enhancement (Liu, Li, Lin, Yang, He, Yu; IJCV 2024; arXiv 2109.02580); ICCV 2021 predecessor "From Contexts to
Locality" (official code github.com/liqiokkk/FCtL).

Component -> file map (spec ../shared/specs/fctl.md, section 2):
  patch grid, context crops, logit-sum merge, TTA, segment_large_image .. patching.py
  LocalityAwareContextAttention, MultiContextFusion, LCF stage modes ...... lcf.py
  AlternatingLocalEnhancement (reconstruction) ........................... ale.py
  TinyFCN, FCN8s (VGG-16), FCtLNet, GlobalOnly baseline .................. model.py
  softmax focal loss ..................................................... loss.py
  SynthLandcover, DeepGlobe / Inria readers, mask writer ................. data.py
  stage models and splits, mIoU (class 0 dropped), stage prediction ...... stages.py
  staged training, poly lr, resume ....................................... train.py
  peak memory, test-split evaluation, segment_file ....................... evaluate.py
  `tenfold predict fctl`: any-size images or folders, streamed, GeoTIFF kept  predict.py
"""

from tenfold.core.registry import SystemSpec, deferred
from tenfold.systems.fctl.config import DEV_SEEDS, PROFILES, Config


SPEC = SystemSpec(
    key="fctl",
    title="Ultra-high Resolution Image Segmentation via Locality-aware Context Fusion and Alternating Local "
          "Enhancement",
    arxiv="2109.02580",
    config_cls=Config,
    profiles=PROFILES,
    train=deferred("tenfold.systems.fctl.train", "train"),
    evaluate=deferred("tenfold.systems.fctl.evaluate", "evaluate"),
    reproduce=deferred("tenfold.systems.fctl.reproduce", "reproduce"),
    predict=deferred("tenfold.systems.fctl.predict", "predict"),
    reproduce_minutes=15.0,
    dev_seeds=DEV_SEEDS,
)
