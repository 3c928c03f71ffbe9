# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 09 · Report
#
# Every stage of the pipeline wrote its metrics, tables, figures and a `provenance.json`
# (parameters, code revision, package versions, hardware, wall time) into `results/<stage>/`.
# This last stage gathers them into `reports/`, the folder a reviewer opens first:
# `reports/README.md` (everything) and `reports/headlines.md` (the tables the repository's
# README links to). Both are committed, so a clone shows the results of the last run
# before anything has been run.

# %% tags=["parameters"]
profile = "default"

# %%
from IPython.display import Markdown

from tinyemo import report

summary = report.build(profile)
summary

# %% [markdown]
# ## Stage timings
#
# Wall time of each stage as recorded by the stage runner (`tinyemo stage NAME`).

# %%
records = report.stage_records()
Markdown(report.timings_table(records))

# %% [markdown]
# ## Headline numbers

# %%
Markdown(report.headline_table(records, report.HEADLINES))
