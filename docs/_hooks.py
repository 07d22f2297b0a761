"""mkdocs hook: the recorded benchmark and IO-model results are generated
files that live beside the code that writes them (benchmarks/recorded/,
benchmarks/recorded/models/).  They are added to the site as they are, so the
pages link to them instead of copying their tables; the links are checked
like any other (mkdocs build --strict)."""

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ("benchmarks/recorded", "benchmarks/recorded/models")
SUFFIXES = (".md", ".png")


def on_files(files, config):
    for folder in RECORDED:
        for path in sorted((ROOT / folder).iterdir()):
            if path.suffix in SUFFIXES and path.name != "README.md":
                files.append(
                    File(
                        f"{folder}/{path.name}",
                        str(ROOT),
                        config["site_dir"],
                        config["use_directory_urls"],
                    )
                )
    return files
