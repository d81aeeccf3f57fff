"""Which class an adapter's greedy answer leans to: the probability of each class's first token right after
`{"<field>": "`, on the first test records, for each adapter given (e.g. a supervised phase and the GRPO adapter after
it), loaded and prompted as evaluation does (tasks/evaluation/generate.py: load_model, split_record).

    python benchmarks/answer_probe.py --model .loraflow/models/smollm2-135m-instruct --test RUN/bench_test.jsonl \\
        --field category --classes billing,technical,account,shipping,refund --adapter A1 --adapter A2
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--test", required=True, help="records (messages with the reference answer last)")
    parser.add_argument("--field", required=True)
    parser.add_argument("--classes", required=True, help="comma-separated class names")
    parser.add_argument("--adapter", action="append", required=True)
    parser.add_argument("--records", type=int, default=4)
    args = parser.parse_args()
    import torch

    from loraflow.tasks.evaluation.generate import load_model, load_test_records, split_record

    torch.set_num_threads(2)
    records = load_test_records(args.test, args.records)
    classes = args.classes.split(",")
    for adapter in args.adapter:
        model, tokenizer = load_model(args.model, adapter)  # as evaluation loads it: merged, its own tokenizer
        first = {c: tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in classes}
        print(adapter)
        for i, record in enumerate(records, start=1):
            prompt, reference = split_record(record, f"{args.test}:{i}")
            text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False) + f'{{"{args.field}": "'
            with torch.no_grad():
                probs = model(**tokenizer(text, return_tensors="pt").to(model.device)).logits[0, -1].float().softmax(-1)
            reference = json.loads(reference)[args.field]
            print(f"  {record['id']} reference {reference}: " + ", ".join(f"{c} {float(probs[i]):.3f}" for c, i in first.items()))


if __name__ == "__main__":
    main()
