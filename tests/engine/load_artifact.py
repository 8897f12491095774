"""Run in a fresh interpreter by the tests: load engine artifacts with transformers + peft only, as a user would.

argv[1]: JSON list of {"dir", "base", "valid"?}. Prints one JSON object per artifact.
"""

import json
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer


def load(art, base):
    lm = json.load(open(f"{art}/label_map.json"))
    engine = json.load(open(f"{art}/engine.json"))
    tok = AutoTokenizer.from_pretrained(art)
    chat = lm["task"] == "chat_sft"
    cls = AutoModelForCausalLM if chat else AutoModelForSequenceClassification
    kwargs = (
        {}
        if chat
        else {
            "num_labels": len(lm["labels"]),
            "id2label": dict(enumerate(lm["labels"])),
            "label2id": lm["label2id"],
            "problem_type": lm["problem_type"],
        }
    )
    adapter_cfg = None
    if engine["format"] == "full" or engine["merged"]:
        model = cls.from_pretrained(art)
    else:
        adapter_cfg = json.load(open(f"{art}/adapter_config.json"))
        # The adapter config names the portable base id; tests map it to where the files are here.
        model = PeftModel.from_pretrained(cls.from_pretrained(base, **kwargs), art)
    model.eval()
    return model, tok, lm, adapter_cfg


def main():
    out = []
    for job in json.loads(sys.argv[1]):
        model, tok, lm, adapter_cfg = load(job["dir"], job["base"])
        result = {
            "dir": job["dir"],
            "base_model_name_or_path": adapter_cfg and adapter_cfg["base_model_name_or_path"],
        }
        if lm["task"] == "chat_sft":
            ids = tok.apply_chat_template(
                [{"role": "user", "content": "What do bees make?"}],
                add_generation_prompt=True,
                return_tensors="pt",
            )
            ids = ids["input_ids"] if hasattr(ids, "keys") else ids
            gen = model.generate(
                input_ids=ids, max_new_tokens=5, do_sample=False, pad_token_id=tok.pad_token_id
            )
            result["generated_tokens"] = int(gen.shape[1] - ids.shape[1])
        else:
            rows = [json.loads(line) for line in open(job["valid"])]
            correct = 0
            logits_all = []
            with torch.no_grad():
                for i in range(0, len(rows), 32):
                    chunk = rows[i : i + 32]
                    enc = tok(
                        [r["text"] for r in chunk],
                        padding=True,
                        truncation=True,
                        max_length=job.get("max_length", 128),
                        return_tensors="pt",
                    )
                    logits = model(**enc).logits
                    logits_all.append(logits)
                    pred = logits.argmax(-1).tolist()
                    correct += sum(lm["labels"][p] == r["label"] for p, r in zip(pred, chunk, strict=True))
            result["accuracy"] = correct / len(rows)
            result["logits_sum"] = float(torch.cat(logits_all).abs().sum())
        out.append(result)
    result_modules = sorted({m.split(".")[0] for m in sys.modules})
    print(json.dumps({"results": out, "finetune_imported": "finetune" in result_modules}))


if __name__ == "__main__":
    main()
