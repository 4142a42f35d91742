"""Dataset readers: list a dataset's clips and labels in its published layout as a :class:`ClipList`.

Readers only look at file names and metadata; decoding happens once in
:func:`tfsonify.data.pipeline.decode_clips`. Problems training can survive (a class with no files, a CSV row
naming a missing file) are reported as :class:`~tfsonify.data.pipeline.DataWarning` with the paths and a
count; problems it cannot (no audio at all, missing metadata files) raise ``ValueError``.

API summary::

    read_folder(root, class_names=None, exclude=())               folder-per-class: root/<class>/**/<clip>.<audio ext>
    read_speech_commands(root, split="train", variant="35",        Speech Commands v2 (35 words) or the 12-class task
                         silence_clips=None, seed=0)                 (10 words + _unknown_ + _silence_)
    speech_commands_backgrounds(root)                             paths of root/_background_noise_/*.wav
    read_fsd50k(root, split="train")                              FSD50K, multi-label (train | validation | dev | eval)
    read_esc50(root, folds=None, esc10=False)                      ESC-50, metadata column "fold"
    esc50_folds(root, test_fold)                                  (train ClipList, test ClipList)

Layouts (exactly as distributed):

* Speech Commands v2: ``<word>/<speaker>_nohash_<n>.wav``, ``validation_list.txt``, ``testing_list.txt``
  (lines like ``right/a69b9b3e_nohash_0.wav``), ``_background_noise_/*.wav``.
* FSD50K: ``FSD50K.ground_truth/{dev,eval,vocabulary}.csv``, ``FSD50K.dev_audio/<fname>.wav``,
  ``FSD50K.eval_audio/<fname>.wav``; ``dev.csv`` = ``fname,labels,mids,split`` (split train/val),
  ``eval.csv`` = ``fname,labels,mids``, ``vocabulary.csv`` = ``index,label,mid`` without a header.
* ESC-50: ``meta/esc50.csv`` = ``filename,fold,target,category,esc10,src_file,take``, ``audio/<filename>``.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from tfsonify.io.audio import AUDIO_EXTENSIONS
from tfsonify.data.demo import read_demo
from tfsonify.data.pipeline import ClipList, DecodedClips, decode_clips, warn
from tfsonify.validation import preview

__all__ = [
    "read_folder",
    "read_speech_commands",
    "speech_commands_backgrounds",
    "read_fsd50k",
    "read_esc50",
    "esc50_folds",
    "SPEECH_COMMANDS_WORDS",
    "SPEECH_COMMANDS_12",
    "DATASET_FORMATS",
    "read_dataset",
    "decode_dataset",
]

SPEECH_COMMANDS_WORDS = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go", "happy",
    "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven", "sheila", "six", "stop",
    "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
)
#: The 12-class task: ten command words, then ``_unknown_`` (the other 25 words) and ``_silence_``.
SPEECH_COMMANDS_12 = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_unknown_", "_silence_")
UNKNOWN, SILENCE = "_unknown_", "_silence_"
BACKGROUND_FOLDER = "_background_noise_"


def _is_audio(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS and not path.name.startswith(".")


def _require_dir(root, what: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{what}: {str(root)!r} is not a directory")
    return root


def read_folder(root: str | os.PathLike, class_names: list[str] | None = None, exclude: tuple[str, ...] = ()) -> ClipList:
    """Folder-per-class dataset: ``root/<class>/**/<clip>.{wav,flac,ogg,mp3,aif,aiff}``.

    Args:
        root: dataset folder.
        class_names: classes in label order; default: the sorted sub-folder names (hidden ones and
            ``exclude`` left out). A listed class whose folder is missing or empty keeps its label index
            and gets a warning.
        exclude: sub-folder names that are not classes (e.g. ``("_background_noise_",)``).

    Returns:
        :class:`ClipList` with int32 labels and metadata column ``class``.

    Raises:
        ValueError: ``root`` is not a folder, or no class folder holds any audio file.
    """
    root = _require_dir(root, "read_folder")
    discovered = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in exclude)
    if class_names is None:
        class_names = discovered
        if not class_names:
            loose = [p.name for p in root.iterdir() if _is_audio(p)]
            hint = f" ({len(loose)} audio files lie directly in it; put each class in its own sub-folder)" if loose else ""
            raise ValueError(f"read_folder: {str(root)!r} has no class sub-folders{hint}")
    paths, labels, empty = [], [], []
    for label, name in enumerate(class_names):
        folder = root / name
        files = sorted(p for p in folder.rglob("*") if _is_audio(p)) if folder.is_dir() else []
        if not files:
            empty.append(name)
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise ValueError(f"read_folder: no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {str(root)!r} "
                         f"in the class folders {preview(class_names)}")
    if empty:
        if class_names is discovered:
            warn(f"read_folder: {len(empty)} class folder(s) in {str(root)!r} hold no audio files and are left out: "
                 f"{preview(empty)}")
            keep = [name for name in class_names if name not in empty]
            remap = {class_names.index(name): new for new, name in enumerate(keep)}
            labels = [remap[label] for label in labels]
            class_names = keep
        else:
            warn(f"read_folder: {len(empty)} class(es) have no audio files in {str(root)!r} (their labels stay, "
                 f"with no examples): {preview(empty)}")
    return ClipList(paths=paths, labels=np.asarray(labels, np.int32), class_names=list(class_names),
                    metadata={"class": [class_names[label] for label in labels]})


# ------------------------------------------------------------------------------------------ Speech Commands


def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        raise ValueError(f"Speech Commands: {str(path)!r} is missing (expected the v2 layout with "
                         "validation_list.txt and testing_list.txt)")
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def speech_commands_backgrounds(root: str | os.PathLike) -> list[Path]:
    """Sorted paths of ``root/_background_noise_/*.wav`` (empty list, with a warning, if the folder is missing)."""
    folder = Path(root) / BACKGROUND_FOLDER
    files = sorted(p for p in folder.glob("*") if _is_audio(p)) if folder.is_dir() else []
    if not files:
        warn(f"Speech Commands: no background noise files in {str(folder)!r}")
    return files


_SPLIT_REGION = {"train": (0.0, 0.8), "validation": (0.8, 0.9), "test": (0.9, 1.0)}


def read_speech_commands(root: str | os.PathLike, split: str = "train", variant: str = "35",
                         silence_clips: int | None = None, seed: int = 0) -> ClipList:
    """Google Speech Commands v2: the 35-word task or the 12-class task.

    Train = every clip of a word folder that is in neither ``validation_list.txt`` nor ``testing_list.txt``.
    The 12-class variant maps the 25 other words to ``_unknown_`` (all of them; no rebalancing) and adds
    ``_silence_`` clips: 1 s segments of ``_background_noise_`` files, taken from the first 80 % of each
    file for train, the next 10 % for validation and the last 10 % for test (no overlap between splits).

    Args:
        root: the extracted dataset folder.
        split: ``train``, ``validation`` or ``test``.
        variant: ``"35"`` (35 words) or ``"12"``.
        silence_clips: number of ``_silence_`` clips (12-class only); default: the mean clip count of the
            ten command words in this split.
        seed: seed for the silence segment positions.

    Returns:
        :class:`ClipList`, int32 labels; metadata ``word`` (the spoken word, or ``_silence_``) and ``speaker``.
    """
    if split not in _SPLIT_REGION:
        raise ValueError(f"Speech Commands split must be one of {sorted(_SPLIT_REGION)}; received {split!r}")
    if str(variant) not in ("35", "12"):
        raise ValueError(f"Speech Commands variant must be '35' or '12'; received {variant!r}")
    root = _require_dir(root, "read_speech_commands")
    validation = _read_list(root / "validation_list.txt")
    testing = _read_list(root / "testing_list.txt")
    words = [w for w in SPEECH_COMMANDS_WORDS if (root / w).is_dir()]
    if not words:
        raise ValueError(f"Speech Commands: none of the 35 word folders (yes, no, ...) exist in {str(root)!r}")
    missing_words = [w for w in SPEECH_COMMANDS_WORDS if w not in words]
    if missing_words:
        warn(f"Speech Commands: {len(missing_words)} word folder(s) missing in {str(root)!r}: {preview(missing_words)}")
    listed = validation | testing
    paths, words_of_clip = [], []
    for word in words:
        for path in sorted(p for p in (root / word).iterdir() if _is_audio(p)):
            relative = f"{word}/{path.name}"
            if split == "train" and relative in listed:
                continue
            if split == "validation" and relative not in validation:
                continue
            if split == "test" and relative not in testing:
                continue
            paths.append(path)
            words_of_clip.append(word)
    own_list = {"validation": ("validation_list.txt", validation), "test": ("testing_list.txt", testing)}.get(split)
    if own_list is not None:
        absent = sorted(item for item in own_list[1] if not (root / item).is_file())
        if absent:
            warn(f"Speech Commands: {len(absent)} file(s) named in {own_list[0]} do not exist and are skipped: "
                 f"{preview(absent)}")
    if str(variant) == "35":
        class_names = list(SPEECH_COMMANDS_WORDS)
        labels = [class_names.index(word) for word in words_of_clip]
        segments = None
    else:
        class_names = list(SPEECH_COMMANDS_12)
        labels = [class_names.index(word) if word in class_names[:10] else class_names.index(UNKNOWN) for word in words_of_clip]
        segments = [None] * len(paths)
        if silence_clips is None:
            counts = [words_of_clip.count(word) for word in class_names[:10]]
            silence_clips = int(round(np.mean(counts)))
        silence = _silence_segments(root, split, silence_clips, seed) if silence_clips > 0 else []
        for path, segment in silence:
            paths.append(path)
            words_of_clip.append(SILENCE)
            labels.append(class_names.index(SILENCE))
            segments.append(segment)
    if not paths:
        raise ValueError(f"Speech Commands: no audio files for split {split!r} in {str(root)!r}")
    speakers = [p.name.split("_nohash_")[0] if w != SILENCE else "" for p, w in zip(paths, words_of_clip)]
    return ClipList(paths=paths, labels=np.asarray(labels, np.int32), class_names=class_names,
                    metadata={"word": words_of_clip, "speaker": speakers}, segments=segments)


def _silence_segments(root: Path, split: str, count: int, seed: int) -> list[tuple[Path, tuple[float, float]]]:
    import soundfile

    files = speech_commands_backgrounds(root)
    durations = []
    for path in files:
        try:
            durations.append(soundfile.info(str(path)).duration)
        except (RuntimeError, soundfile.LibsndfileError) as error:  # reported, then ignored
            warn(f"Speech Commands: cannot read background file {str(path)!r}: {error}")
            durations.append(0.0)
    low, high = _SPLIT_REGION[split]
    usable = [(path, duration) for path, duration in zip(files, durations) if (high - low) * duration >= 1.0]
    if not usable:
        warn(f"Speech Commands: no background file is long enough to cut 1 s {SILENCE} clips for split {split!r}; "
             f"the {SILENCE} class has no examples")
        return []
    rng = np.random.default_rng([seed, list(_SPLIT_REGION).index(split)])
    segments = []
    for _ in range(count):
        path, duration = usable[rng.integers(len(usable))]
        start = low * duration + rng.uniform(0.0, (high - low) * duration - 1.0)
        segments.append((path, (float(start), 1.0)))
    return segments


# ------------------------------------------------------------------------------------------------- FSD50K


def _read_csv(path: Path, what: str) -> list[dict]:
    if not path.is_file():
        raise ValueError(f"{what}: {str(path)!r} is missing")
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def read_fsd50k(root: str | os.PathLike, split: str = "train") -> ClipList:
    """FSD50K (Fonseca et al., 2020), multi-label over the 200 classes of ``vocabulary.csv``.

    Args:
        root: folder holding ``FSD50K.ground_truth/``, ``FSD50K.dev_audio/`` and ``FSD50K.eval_audio/``.
        split: ``train`` / ``validation`` (the dev set's ``split`` column, ``train`` / ``val``), ``dev`` (both)
            or ``eval`` (``test`` is accepted as an alias).

    Returns:
        :class:`ClipList` with float32 multi-hot labels ``[N, C]``; metadata ``fname`` and ``mids``.
        Rows naming a missing audio file are skipped with a warning listing them.
    """
    aliases = {"train": "train", "validation": "val", "val": "val", "dev": "dev", "eval": "eval", "test": "eval"}
    if split not in aliases:
        raise ValueError(f"FSD50K split must be one of {sorted(aliases)}; received {split!r}")
    root = _require_dir(root, "read_fsd50k")
    truth = root / "FSD50K.ground_truth"
    vocabulary_path = truth / "vocabulary.csv"
    if not vocabulary_path.is_file():
        raise ValueError(f"FSD50K: {str(vocabulary_path)!r} is missing")
    with open(vocabulary_path, newline="") as handle:
        vocabulary = [row for row in csv.reader(handle) if row]
    if vocabulary and not vocabulary[0][0].strip().isdigit():  # tolerate a header row
        vocabulary = vocabulary[1:]
    class_names = [row[1] for row in sorted(vocabulary, key=lambda row: int(row[0]))]
    index = {name: i for i, name in enumerate(class_names)}
    wanted = aliases[split]
    subset = "eval" if wanted == "eval" else "dev"
    rows = _read_csv(truth / f"{subset}.csv", "FSD50K")
    if wanted in ("train", "val"):
        rows = [row for row in rows if row.get("split") == wanted]
    audio_dir = root / f"FSD50K.{subset}_audio"
    paths, labels, fnames, mids, missing, unknown = [], [], [], [], [], set()
    for row in rows:
        path = audio_dir / f"{row['fname']}.wav"
        if not path.is_file():
            missing.append(str(path))
            continue
        target = np.zeros(len(class_names), np.float32)
        for name in row["labels"].split(","):
            if name in index:
                target[index[name]] = 1.0
            else:
                unknown.add(name)
        paths.append(path)
        labels.append(target)
        fnames.append(row["fname"])
        mids.append(row.get("mids", ""))
    if missing:
        warn(f"FSD50K: {len(missing)} of {len(rows)} clips listed in {subset}.csv are missing and skipped: {preview(missing)}")
    if unknown:
        warn(f"FSD50K: labels not in vocabulary.csv are ignored: {preview(sorted(unknown))}")
    if not paths:
        raise ValueError(f"FSD50K: no audio files found for split {split!r} in {str(audio_dir)!r}")
    return ClipList(paths=paths, labels=np.stack(labels), class_names=class_names, multi_label=True,
                    metadata={"fname": fnames, "mids": mids})


# ------------------------------------------------------------------------------------------------- ESC-50


def read_esc50(root: str | os.PathLike, folds: list[int] | tuple[int, ...] | None = None, esc10: bool = False) -> ClipList:
    """ESC-50 (Piczak, 2015): 50 classes, 5 folds of 5 s clips.

    Args:
        root: folder with ``meta/esc50.csv`` and ``audio/``.
        folds: folds to include (1-5); default all.
        esc10: only the ESC-10 subset (classes renumbered 0-9 in target order).

    Returns:
        :class:`ClipList`, int32 labels (the ``target`` column), metadata ``fold`` (int) and ``category``.
    """
    root = _require_dir(root, "read_esc50")
    rows = _read_csv(root / "meta" / "esc50.csv", "ESC-50")
    if folds is not None:
        bad = [f for f in folds if int(f) not in range(1, 6)]
        if bad:
            raise ValueError(f"ESC-50 folds are 1-5; received {list(folds)}")
        folds = {int(f) for f in folds}
    if esc10:
        rows = [row for row in rows if row["esc10"].strip().lower() == "true"]
    categories = {int(row["target"]): row["category"] for row in rows}
    targets = sorted(categories)
    class_names = [categories[t] for t in targets]
    remap = {t: i for i, t in enumerate(targets)}
    paths, labels, fold_of, category, missing = [], [], [], [], []
    for row in rows:
        if folds is not None and int(row["fold"]) not in folds:
            continue
        path = root / "audio" / row["filename"]
        if not path.is_file():
            missing.append(str(path))
            continue
        paths.append(path)
        labels.append(remap[int(row["target"])])
        fold_of.append(int(row["fold"]))
        category.append(row["category"])
    if missing:
        warn(f"ESC-50: {len(missing)} clips listed in meta/esc50.csv are missing and skipped: {preview(missing)}")
    if not paths:
        raise ValueError(f"ESC-50: no audio files found in {str(root / 'audio')!r} for folds {sorted(folds or range(1, 6))}")
    return ClipList(paths=paths, labels=np.asarray(labels, np.int32), class_names=class_names,
                    metadata={"fold": fold_of, "category": category})


def esc50_folds(root: str | os.PathLike, test_fold: int, esc10: bool = False) -> tuple[ClipList, ClipList]:
    """``(train, test)`` for one split of 5-fold cross-validation: test = ``test_fold``, train = the other four."""
    if int(test_fold) not in range(1, 6):
        raise ValueError(f"ESC-50 test_fold must be 1-5; received {test_fold}")
    clips = read_esc50(root, esc10=esc10)
    return clips.exclude("fold", int(test_fold)), clips.select("fold", int(test_fold))


#: Dataset layouts :func:`read_dataset` understands.
DATASET_FORMATS = ("folder", "demo", "speech_commands", "fsd50k", "esc50")


def read_dataset(data: str, fmt: str, split: str = "train") -> ClipList:
    """The :class:`~tfsonify.data.pipeline.ClipList` of a dataset in one of the :data:`DATASET_FORMATS`.

    Args:
        data: the dataset's root folder.
        fmt: ``folder`` (folder per class), ``demo`` (``tfsonify build-demo-data``'s keywords),
            ``speech_commands``, ``fsd50k`` or ``esc50``.
        split: the split of datasets that have one (Speech Commands, FSD50K).
    """
    if fmt == "folder":
        return read_folder(data, exclude=("_background_noise_",))
    if fmt == "demo":
        return read_demo(data, task="keywords")
    if fmt == "speech_commands":
        return read_speech_commands(data, split=split)
    if fmt == "fsd50k":
        return read_fsd50k(data, split=split)
    if fmt == "esc50":
        return read_esc50(data)
    raise ValueError(f"format must be one of {DATASET_FORMATS}; received {fmt!r}")


def decode_dataset(data: str, fmt: str, cache_dir: str | os.PathLike, split: str = "train") -> DecodedClips:
    """:func:`read_dataset`, then decode every clip once at 8 kHz into ``cache_dir`` (reused on later runs)."""
    from tfsonify.progress import progress

    clips = read_dataset(data, fmt, split)
    with progress(f"decoding {len(clips)} clips of {data}"):
        return decode_clips(clips, cache_dir=cache_dir)
