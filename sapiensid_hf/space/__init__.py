"""The Gradio Space: compare two pictures of people, search a gallery, read about the model.

`build_demo(pipeline)` makes the page (page.py) for a `SapiensIDPipeline`; `sapiensid demo`
(commands/demo.py) serves it on this machine, and a deployed Space's `app.py` (spaces_app/app.py) runs the
same command. The buttons call `DemoHandlers` (handlers.py; the Search tab's work in gallery_search.py),
which read uploads with the processor's decoder (uploads.py), draw what the detector found (pictures.py)
and turn every failure into a message in the page (messages.py).
"""

from .handlers import DemoHandlers
from .page import build_demo, launch_demo

__all__ = ["DemoHandlers", "build_demo", "launch_demo"]
