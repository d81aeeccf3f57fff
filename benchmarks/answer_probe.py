"""Which class an adapter's greedy answer leans to: the probability of each class's first token right after
`{"<field>": "`, on the first test records, for each adapter given (e.g. a supervised phase and the GRPO adapter after it).

    python benchmarks/answer_probe.py --model .loraflow/models/smollm2-135m-instruct --test RUN/bench_test.jsonl \\
        --field category --classes billing,technical,account,shipping,refund --adapter A1 --adapter A2
"""
import argparse
import json


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
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(2)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    records = [json.loads(line) for line in open(args.test)][:args.records]
    classes = args.classes.split(",")
    first = {c: tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in classes}
    for adapter in args.adapter:
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(args.model), adapter).merge_and_unload().eval()
        print(adapter)
        for record in records:
            prompt = [m for m in record["messages"] if m["role"] != "assistant"]
            text = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False) + f'{{"{args.field}": "'
            with torch.no_grad():
                probs = model(**tokenizer(text, return_tensors="pt")).logits[0, -1].softmax(-1)
            reference = json.loads(record["messages"][-1]["content"])[args.field]
            print(f"  {record['id']} reference {reference}: " + ", ".join(f"{c} {float(probs[i]):.3f}" for c, i in first.items()))


if __name__ == "__main__":
    main()
