"""Packed training with trl: the examples' token lengths, and a trainer that cuts each example at model.max_length
before packing the examples into the planned rows (the plan and why: tasks/planning/estimate_packing.py)."""
import copy


def example_token_lengths(dataset, tokenizer) -> list[int]:
    """Token count of every training example: its input_ids, or prompt + completion through the chat template."""
    columns = dataset.column_names
    if "input_ids" in columns:
        return [len(ids) for ids in dataset["input_ids"]]
    if "prompt" in columns and "completion" in columns:
        texts = [tokenizer.apply_chat_template(p + c, tokenize=False) for p, c in zip(dataset["prompt"], dataset["completion"], strict=True)]
    elif "messages" in columns:
        texts = [tokenizer.apply_chat_template(m, tokenize=False) for m in dataset["messages"]]
    else:
        texts = list(dataset["text"])
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def budget_packing_trainer(trainer_class, example_max_length: int):
    """`trainer_class` whose packed datasets are cut to example_max_length per example before packing into rows.

    trl packs to rows of args.max_length and truncates only what overflows a row; here a row (the token budget) may be
    longer or shorter than model.max_length, so each example is first truncated to model.max_length, as unpacked
    training does, and a row is widened to the longest example where the planned row is shorter.
    """

    class BudgetPackingTrainer(trainer_class):
        def _prepare_dataset(self, dataset, processing_class, args, packing, formatting_func, dataset_name):
            if not packing or args.max_length is None:
                return super()._prepare_dataset(dataset, processing_class, args, packing, formatting_func, dataset_name)
            from trl.data_utils import pack_dataset

            per_example = copy.copy(args)
            per_example.max_length = example_max_length
            prepared = super()._prepare_dataset(dataset, processing_class, per_example, False, formatting_func, dataset_name)
            longest = max((len(ids) for ids in prepared["input_ids"]), default=0)
            row = max(args.max_length, longest)  # best-fit packing cuts what overflows a row: no example may
            return pack_dataset(prepared.select_columns(["input_ids", "labels"]), row, args.packing_strategy, {})

    BudgetPackingTrainer.__name__ = BudgetPackingTrainer.__qualname__ = f"BudgetPacking{trainer_class.__name__}"
    return BudgetPackingTrainer
