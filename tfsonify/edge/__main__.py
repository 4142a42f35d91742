"""``python -m tfsonify.edge MODEL.tflite CLIP.wav ...``: on-device sonification with LiteRT alone."""
from tfsonify.edge.demo import main

raise SystemExit(main())
