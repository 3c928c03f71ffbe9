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
# # 06 · Report
#
# Every stage of the pipeline wrote its metrics, tables, figures and a `provenance.json`
# (parameters, code revision, package versions, hardware, wall time) into `results/<stage>/`.
# This last stage gathers them into `reports/`, the folder a reviewer opens first, and
# refreshes the results section of the repository's README, so that every number shown
# there was produced by the pipeline on the machine that ran it.

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
