"""Markdown tables from the committed results: the small dLLM's accuracy
(``small_dllm_accuracy.json``) and the calibration methods on the LLaDA-8B block."""
import json
import os
import statistics
import sys

RES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results")


def accuracy(path=os.path.join(RES, "small_dllm_accuracy.json")):
    d = json.load(open(path))
    ts = list(d["rows"][0]["nll"])
    print("| config | bits | eff. bits | bias corr. | " + " | ".join(f"NLL t={t}" for t in ts)
          + " | mean NLL | gen. agreement | weighted rel. err |")
    print("|---" * (len(ts) + 7) + "|")
    for r in d["rows"]:
        eb = f"{r['effective_bits']:.2f}" if "effective_bits" in r else "16"
        we = f"{r['weighted_rel_error']:.4f}" if "weighted_rel_error" in r else "-"
        print(f"| {r['config']} | {r['bits']} | {eb} | {'T=8' if r['bias_correction'] else '-'} | "
              + " | ".join(f"{r['nll'][t]:.3f}" for t in ts)
              + f" | {statistics.mean(r['nll'].values()):.4f} | {r['agreement']:.3f} | {we} |")


def methods(path):
    d = json.load(open(path))
    rows = sorted(d["methods_llada_block"], key=lambda r: (r["bits"], r["weighted_rel_error"]))
    print("| method | bits | eff. bits | weighted rel. error | seconds (1 block) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['bits']} | {r['effective_bits']:.3f} | {r['weighted_rel_error']:.4f} | "
              f"{r['seconds']:.1f} |")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        methods(sys.argv[1])
    else:
        accuracy()
