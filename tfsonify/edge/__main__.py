"""``python -m tfsonify.edge MODEL.tflite CLIP.wav ...``: on-device sonification with LiteRT alone."""
import sys

from tfsonify.edge.demo import main

try:
    status = main()
except ModuleNotFoundError as error:  # LiteRT is the [lite] extra: say so in one line
    if (error.name or "").split(".")[0] != "ai_edge_litert":
        raise
    print("python -m tfsonify.edge: error: the edge runtime needs ai_edge_litert, which is not installed: "
          "pip install 'tfsonify[lite]'", file=sys.stderr)
    status = 1
raise SystemExit(status)
