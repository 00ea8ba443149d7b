"""Reading finished runs: a grid's eval.json files (`grid_results`), the paper's statistics
(`results`), tables (`report_markdown`), plots (`plots`), `python -m lit_dmash aggregate`
(`aggregate`) and the representation diagnostics' maths (`diagnostics`)."""
