"""reft: Reference Twice, a simple and unified baseline for few-shot instance segmentation (Han, Zhang, Xue, Xu,
Shen, Wang, Wang, Liu, Li; arXiv 2301.01156). No code was released: the two references are reconstructions.

Component -> file map (spec ../shared/specs/reft.md, section 2):
  TinyMask2Former (backbone, FPN pixel decoder, masked-attention decoder, heads), CosineClassifier ... model.py
  MaskPooling -> class centres, FeatureLevelReference, TopKSupportQueries, QueryLevelReference ...... reference.py
  HungarianMatcher (class / BCE / dice costs on points) ............................................ matcher.py
  SetCriterion (CE + BCE + dice, deep supervision), base-class distillation (iFSIS) ................ loss.py
  ShapesFSIS generator ............................................................................. shapes.py
  COCO reader / writer, K-shot sampling (TFA rule), category split ................................. coco.py
  pycocotools evaluation (nAP, bAP, AP; segm and bbox) ............................................. metrics.py
  shared loading, EpisodicSupportSampler ........................................................... data.py
  base training, K-shot fine-tuning (FSIS / gFSIS / iFSIS), the fine-tuning baseline ............... train.py
  Mask R-CNN baseline (torchvision MaskRCNN on TinyResNet + FPN, component 11) ..................... baselines.py
  evaluate / predict / reproduce ........................................... evaluate.py, predict.py, reproduce.py
"""

from tenfold.core.registry import SystemSpec, deferred
from tenfold.systems.reft.config import DEV_SEEDS, PROFILES, Config

SPEC = SystemSpec(
    key="reft",
    title="Reference Twice: A Simple and Unified Baseline for Few-Shot Instance Segmentation",
    arxiv="2301.01156",
    config_cls=Config,
    profiles=PROFILES,
    train=deferred("tenfold.systems.reft.train", "train"),
    evaluate=deferred("tenfold.systems.reft.evaluate", "evaluate"),
    reproduce=deferred("tenfold.systems.reft.reproduce", "reproduce"),
    reproduce_minutes=15.0,
    dev_seeds=DEV_SEEDS,
    predict=deferred("tenfold.systems.reft.predict", "predict"),
    predict_options=("support",),
)
