"""`tinyemo fetch-emotion6`: copy upstream's Emotion6 CLIP features into data/raw/emotion6-clip/."""
from tinyemo import provenance
from tinyemo.cli import CommandError


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "fetch-emotion6",
        help="copy upstream's precomputed Emotion6 features into data/raw/emotion6-clip/",
        description="Find the Emotion6 CLIP ViT-L/14 features of github.com/ggcr/TinyEmo "
        "($TINYEMO_DATA_DIR, else the download cache, else a download at a pinned commit) and "
        "copy train/ (and test/ when present) into data/raw/emotion6-clip/, with SOURCE.json: "
        "where they came from, the file count and a SHA-256 over the copied files.",
        epilog="example: TINYEMO_DATA_DIR=../shared/data/tinyemo-sample tinyemo fetch-emotion6",
    )
    parser.set_defaults(handler=run)


def run(args) -> int:
    import time

    from tinyemo import emotion6, paths

    started = time.perf_counter()
    try:
        source = emotion6.fetch()
    except emotion6.DataUnavailableError as err:
        raise CommandError(str(err)) from None
    record = provenance.record("fetch-emotion6", source, time.perf_counter() - started)
    out = paths.stage_results("fetch-emotion6")
    out.mkdir(parents=True, exist_ok=True)
    provenance.write(out / "provenance.json", record)
    print(f"fetch-emotion6: {source['n_files']} files from {source['source']} -> {emotion6.FETCHED} "
          f"(sha256 {source['files_sha256'][:16]}...)")
    return 0
