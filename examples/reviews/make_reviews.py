"""Generate the second example data set: online-shop product reviews (English and Chinese) to classify into JSON, with realistic dirt.

Each review is about one aspect (quality, price, delivery, service, size) with one sentiment; whether the customer
recommends the product mostly follows the sentiment, but not always, and the text says so when it does not
("the rest is fine, still recommend it"). Many phrasings per aspect and sentiment, built from parts: openers, hedges,
products of several kinds, intensifiers, star ratings, emoji and the odd typo.
Seeded and reproducible: `python examples/reviews/make_reviews.py` rewrites reviews.jsonl byte for byte.
"""
import json
import random
from pathlib import Path

SYSTEM = ("Classify the product review as JSON with keys sentiment (positive|neutral|negative), "
          "aspect (quality|price|delivery|service|size: what the review is mainly about), recommend (yes|no).")
WEAR_EN = ["jacket", "dress", "hoodie", "T-shirt", "pair of sneakers", "pair of boots", "winter coat", "sweater"]
ITEMS_EN = ["pair of headphones", "desk lamp", "blender", "backpack", "phone case", "coffee maker", "kettle", "wireless mouse"]
WEAR_ZH = ["连衣裙", "运动鞋", "羽绒服", "牛仔裤", "卫衣", "T恤", "衬衫", "帆布鞋"]
ITEMS_ZH = ["耳机", "台灯", "电饭煲", "保温杯", "蓝牙音箱", "手机壳", "榨汁机", "双肩包"]
# Phrases per (aspect, sentiment), "|"-separated; {p} is the product, {i} an intensifier.
PHRASES_EN = {
    ("quality", "positive"): "the {p} is {i}well made|the {p} feels {i}solid and sturdy|build quality on the {p} is {i}great"
                             "|the materials of the {p} feel {i}nice|the {p} still works like new after three months"
                             "|{i}impressed with how durable the {p} is|the {p} looks and feels premium|excellent craftsmanship on this {p}",
    ("quality", "neutral"): "the {p} is okay, nothing special|quality of the {p} is average for what it is|the {p} does the job but feels a bit cheap"
                            "|the {p} is decent, some small flaws in the finish|the {p} works as described, no more, no less"
                            "|the {p} is fine so far, we'll see how long it lasts|quality is so-so, the {p} is usable"
                            "|the {p} is about what I expected quality-wise",
    ("quality", "negative"): "the {p} broke after two weeks|the {p} feels {i}cheap and flimsy|the {p} fell apart after a few uses"
                             "|the {p} stopped working within a month|a part of the {p} came loose already"
                             "|the {p} has a defect, something cracked on day one|{i}poor quality, the {p} smells weird and looks cheap"
                             "|the {p} is {i}badly made, nothing like the photos",
    ("price", "positive"): "great value for money, the {p} was {i}cheap|got the {p} on sale, an absolute bargain"
                           "|the {p} costs half of what the big brands charge|{i}good price for a {p} this nice|can't beat the price of this {p}"
                           "|the {p} is {i}affordable and worth every cent|paid less than expected for the {p}, happy"
                           "|for this price the {p} is a steal",
    ("price", "neutral"): "the {p} is fairly priced, not cheap, not expensive|the price of the {p} is about average|the {p} is okay for the money"
                          "|you get what you pay for with this {p}|the {p} is a bit pricey but on par with other shops"
                          "|price is reasonable, though I've seen the {p} cheaper elsewhere|the {p} is only worth it when it's on sale"
                          "|not a bargain, not a rip-off, the {p} is priced normally",
    ("price", "negative"): "the {p} is {i}overpriced for what you get|way too expensive, the {p} is not worth the money"
                           "|paid double what the {p} is worth|the price dropped right after I bought the {p}, feel ripped off"
                           "|the {p} costs a fortune and feels like a budget item|found the same {p} for half the price elsewhere"
                           "|the {p} is {i}expensive, not worth it at this price|hidden shipping fees made the {p} a bad deal",
    ("delivery", "positive"): "the {p} arrived {i}fast, next day|delivery was quick, got the {p} two days early"
                              "|the {p} came well packed and ahead of schedule|shipping was {i}fast and the courier was friendly"
                              "|ordered the {p} on Monday, had it on Tuesday|the {p} arrived in perfect condition and on time"
                              "|{i}speedy delivery, tracking was accurate|lightning fast shipping for my {p}",
    ("delivery", "neutral"): "the {p} took about a week to arrive, as stated|delivery was normal, nothing to complain about"
                             "|shipping took a few extra days, but the {p} got here|the {p} arrived on the last day of the delivery window"
                             "|the box was a bit dented but the {p} was fine|the courier left the {p} with a neighbour, which was okay"
                             "|shipping speed was standard for this shop|tracking didn't update for a while, but the {p} arrived eventually",
    ("delivery", "negative"): "the {p} took three weeks to arrive|delivery was {i}slow and nobody answered about the delay"
                              "|the {p} was lost in transit and came a month late|the package was crushed and the {p} was damaged in shipping"
                              "|the {p} was delivered to the wrong address|tracking said delivered but the {p} didn't show up for days"
                              "|late delivery, missed the birthday I bought the {p} for"
                              "|the courier never rang, I had to pick up the {p} myself across town",
    ("service", "positive"): "customer service was {i}helpful when I had a question about the {p}"
                             "|the seller answered within minutes and sorted out my {p} order|they replaced my {p} without any hassle"
                             "|support was {i}friendly and patient|the shop sent a free replacement part for the {p}"
                             "|great after-sales service, they followed up to check the {p} was fine"
                             "|the seller added a handwritten note, {i}lovely service|the exchange for the {p} was {i}easy",
    ("service", "neutral"): "customer service replied after two days, the answer was okay|support was polite but couldn't really help with the {p}"
                            "|the seller answered my question, eventually|the return process for the {p} was slow but it worked"
                            "|service was standard, nothing special|had to email twice, but they fixed my {p} order in the end"
                            "|the chat bot was useless, a human helped after a while|support gave a generic answer, it was enough for me",
    ("service", "negative"): "customer service {i}ignored my messages about the {p}|the seller refused to exchange the faulty {p}"
                             "|support was {i}rude and unhelpful|they keep promising a refund for the {p} and nothing happens"
                             "|no one replies to emails, {i}terrible service|the seller blamed me for the broken {p}"
                             "|I was on hold for an hour and then the call dropped|the return for the {p} was rejected for no reason",
    ("size", "positive"): "the {p} fits {i}well|the {p} is true to size, ordered my usual size"
                          "|the size chart was accurate, the {p} fits like a glove|perfect fit, the {p} is comfortable all day"
                          "|the {p} fits my kid exactly as the chart said|ordered an M and the {p} fits just right"
                          "|the {p} is the right length and width, {i}comfy|finally a {p} that fits me well",
    ("size", "neutral"): "the {p} runs slightly large, but it's wearable|the {p} is a little tight at first, should loosen up"
                         "|the size is okay, maybe half a size small|the {p} fits, though a bit longer than I expected"
                         "|sizing of the {p} is roughly right, I'm between two sizes|the {p} is a bit loose but not enough to return"
                         "|size is as expected, nothing more to say|the {p} fits okay, the chart is a little off",
    ("size", "negative"): "the {p} is {i}small, had to send it back|the {p} runs two sizes small|ordered my usual size and the {p} is {i}huge"
                          "|the size chart is wrong, the {p} doesn't fit at all|the {p} is way too tight, can't even put it on"
                          "|the {p} is {i}short, nothing like the measurements|the {p} is too narrow and uncomfortable"
                          "|sizes are all over the place, the {p} is {i}baggy",
}
PHRASES_ZH = {
    ("quality", "positive"): "{p}做工{i}好，用料扎实|{p}质量{i}不错，摸起来很有质感|{p}用了三个月还跟新的一样|这个{p}{i}结实，细节也好"
                             "|{p}的质感{i}好，比实体店的还好|{p}品质没得说，细节处理到位|{p}一点异味都没有，做工精细|{p}{i}耐用，质量超出预期",
    ("quality", "neutral"): "{p}质量一般，中规中矩|{p}还行吧，没什么特别的|{p}能用，就是做工有点粗糙|{p}和描述差不多，不好不坏"
                            "|{p}目前还可以，耐不耐用再看看|{p}质量马马虎虎，有些小瑕疵|{p}用着还凑合|{p}质量跟预期差不多",
    ("quality", "negative"): "{p}用了两周就坏了|{p}质量{i}差，做工粗糙|{p}一股怪味，做工也差|{p}没用几次就松了|{p}不到一个月就不能用了"
                             "|{p}和图片完全不一样，{i}廉价|{p}有质量问题，第一天就裂了|{p}{i}差劲，一看就是劣质货",
    ("price", "positive"): "{p}性价比{i}高|活动价买的{p}，{i}划算|{p}价格只有大牌的一半|这个价格买到这样的{p}，捡到宝了|{p}{i}便宜，物超所值"
                           "|{p}价格实惠，值这个钱|{p}比别家便宜不少，很满意|这个价位的{p}没得挑",
    ("price", "neutral"): "{p}价格一般，不贵也不便宜|{p}的价格中规中矩|{p}一分钱一分货吧|{p}稍微有点贵，不过和别家差不多"
                          "|{p}价格还算合理，别家也见过更便宜的|{p}只有打折的时候才值得买|{p}价格正常，没什么惊喜|{p}这个价位还能接受",
    ("price", "negative"): "{p}{i}贵，完全不值这个价|{p}定价太离谱了|刚买完{p}就降价了，{i}坑|同样的{p}别家便宜一半|{p}卖这么贵，用起来像便宜货"
                           "|运费另算，{p}买亏了|{p}价格虚高，不值|花了大价钱买{p}，{i}后悔",
    ("delivery", "positive"): "{p}第二天就到了，物流{i}快|快递{i}给力，{p}提前两天送到|{p}包装得很好，送得也快|物流速度{i}快，快递小哥态度也好"
                              "|周一下单{p}周二就收到了|{p}完好无损，按时送达|发货{i}快，物流信息很准|{p}闪电发货，点赞",
    ("delivery", "neutral"): "{p}大概一周到的，和说的一样|物流速度一般，没什么好说的|{p}晚了几天，不过还是到了|{p}在最后一天才送到"
                             "|快递盒子有点压扁了，{p}倒是没事|快递放在了驿站，还行|物流正常速度|物流信息好几天没更新，{p}最后还是到了",
    ("delivery", "negative"): "{p}三个星期才到|物流{i}慢，问客服也没人回|{p}在路上丢了，晚了一个月才到|快递箱子压坏了，{p}也摔坏了|{p}送错地址了"
                              "|显示已签收，{p}好几天都没见到|{p}到晚了，生日礼物都没赶上|快递员不送上门，{p}还得自己去取",
    ("service", "positive"): "客服{i}耐心，{p}的问题很快解决了|卖家几分钟就回复了，{p}订单处理得很好|{p}有问题直接给换了新的，没有一点麻烦"
                             "|客服态度{i}好|店家还免费寄了{p}的配件|售后{i}贴心，还回访问{p}用得怎么样|卖家附了手写卡片，服务{i}周到"
                             "|{p}退换货{i}方便",
    ("service", "neutral"): "客服两天后才回复，回答还可以|客服挺客气，但{p}的问题没解决|问了卖家问题，过了很久才回|{p}退货流程有点慢，但最后办好了"
                            "|服务一般，没什么特别|发了两次消息，最后{p}订单还是处理了|机器人客服没用，后来人工客服帮了忙|客服回复很模板化，不过够用",
    ("service", "negative"): "客服一直不理人，{p}的问题一直没人管|卖家拒绝换货，{p}明明是坏的|客服态度{i}差|一直说给{p}退款，到现在也没退"
                             "|发消息没人回，服务{i}差|卖家说{p}是我弄坏的|打电话等了一个小时，然后就断了|{p}退货申请无缘无故被拒",
    ("size", "positive"): "{p}尺码{i}标准，穿着正合适|按平时的码买的{p}，刚刚好|尺码表很准，{p}{i}合身|{p}大小正好，穿一天也很舒服"
                          "|给孩子买的{p}，按尺码表买的正合适|买了M码，{p}不大不小|{p}长短宽窄都{i}合适|终于买到一件合身的{p}",
    ("size", "neutral"): "{p}偏大一点，不过能穿|{p}刚开始有点紧，应该会撑开|尺码还行，可能偏小半码|{p}能穿，就是比想象的长一点|{p}尺码介于两个码之间"
                         "|{p}有点松，但不至于退|尺码和预期差不多|{p}大小还可以，尺码表有点偏差",
    ("size", "negative"): "{p}{i}小，只能退了|{p}小了两个码|按平时尺码买的，{p}大得离谱|尺码表是错的，{p}根本穿不了|{p}太紧了，根本穿不上"
                          "|{p}{i}短，和标的尺寸不符|{p}太窄了，穿着难受|尺码乱标，{p}{i}肥",
}
# Recommendation cues: "yes"/"no" follow the sentiment; "keep"/"drop" are the exceptions the text has to explain.
CUES_EN = {
    "yes": ["Would recommend!", "Highly recommend.", "Will buy again.", "Told my friends to get one.", "Recommended.", "Definitely worth it."],
    "no": ["Would not recommend.", "Not buying again.", "Save your money.", "Returning it.", "Avoid.", "Look elsewhere."],
    "neutral-yes": ["Decent overall, I'd recommend it.", "Good enough for everyday use, would recommend.",
                    "Still, I'd recommend it.", "Fine purchase, I'd buy it again."],
    "neutral-no": ["Not sure I'd recommend it.", "Probably won't buy again.", "I'd look elsewhere next time.", "Wouldn't recommend it to friends."],
    "keep": ["Apart from that the product itself is great, still recommend it.", "The rest is fine, so I'd still recommend it.",
             "Otherwise no complaints, I'd buy it again.", "Still, the product is good and I'd recommend it."],
    "drop": ["But the product itself disappointed me, can't recommend it.", "Sadly the rest let me down, not recommending it.",
             "Still, I wouldn't buy it again."],
}
CUES_ZH = {
    "yes": ["推荐购买！", "强烈推荐。", "会回购的。", "已经推荐给朋友了。", "值得入手。", "推荐。"],
    "no": ["不推荐。", "不会再买了。", "大家别买。", "已退货。", "避雷。", "建议去别家买。"],
    "neutral-yes": ["总体还行，可以买。", "日常用够了，推荐。", "凑合用，还是推荐的。", "整体可以，推荐一下。"],
    "neutral-no": ["不太推荐。", "应该不会回购了。", "下次换别家了。", "不会推荐给朋友。"],
    "keep": ["不过东西本身挺好，还是推荐。", "其他都还好，依然会回购。", "除此之外没毛病，推荐。", "东西本身没问题，还是值得买。"],
    "drop": ["但东西本身让人失望，不推荐。", "可惜其他方面不行，不推荐。", "不过不会再买了。"],
}
PREFIX_EN = ["", "", "", "", "Honestly, ", "To be honest, ", "Update: ", "I have to say ", "Tbh ", "Overall ", "So ", "Well, "]
PREFIX_ZH = ["", "", "", "", "说实话，", "个人感觉", "总的来说，", "追评：", "第二次买了，", "买来送人的，", "用了一段时间，", "嗯，"]
INTENSIFIERS_EN = ["", "", "really ", "very ", "super ", "so ", "pretty "]
INTENSIFIERS_ZH = ["很", "非常", "特别", "超级", "挺", "真的很"]
STARS = {"en": {"positive": ["5 stars.", "5/5", "★★★★★", "4 stars."], "neutral": ["3 stars.", "3/5", "★★★☆☆"],
                "negative": ["1 star.", "1/5", "★☆☆☆☆", "2 stars."]},
         "zh": {"positive": ["五星好评！", "给五星。", "⭐⭐⭐⭐⭐"], "neutral": ["给三星。", "三星吧。"], "negative": ["一星差评。", "给一星。", "差评！"]}}
EMOJI = {"positive": ["👍", "😍", "🙌", "❤️"], "neutral": ["😐", "🤷"], "negative": ["😡", "👎", "😤"]}
ASPECTS, ASPECT_WEIGHTS = ["quality", "price", "delivery", "service", "size"], [28, 20, 20, 14, 18]
SENTIMENTS, SENTIMENT_WEIGHTS = ["positive", "neutral", "negative"], [45, 22, 33]


def typo(rng: random.Random, text: str, language: str) -> str:
    """The odd typing slip: two swapped letters in an English word, a wrong particle in Chinese."""
    if language == "zh":
        return text.replace("的", "得", 1)
    words = text.split(" ")
    long = [k for k, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
    if not long:
        return text
    k = rng.choice(long)
    j = rng.randrange(1, len(words[k]) - 2)
    words[k] = words[k][:j] + words[k][j + 1] + words[k][j] + words[k][j + 2:]
    return " ".join(words)


def recommendation(rng: random.Random, sentiment: str) -> tuple[str, str | None]:
    """The recommend label and the cue that expresses it; a plain positive or negative review may leave it implied."""
    if sentiment == "neutral":
        kind = rng.choice(["neutral-yes", "neutral-no"])
        return kind.split("-")[1], kind
    exception = rng.random() < (0.1 if sentiment == "positive" else 0.25)
    if exception:
        return ("no", "drop") if sentiment == "positive" else ("yes", "keep")
    label = "yes" if sentiment == "positive" else "no"
    return label, (label if rng.random() < 0.6 else None)


def review_text(rng: random.Random, language: str, aspect: str, sentiment: str, cue: str | None) -> str:
    """One review in one or two sentences, from a phrase for (aspect, sentiment) and optional decoration."""
    en = language == "en"
    products = (WEAR_EN if en else WEAR_ZH) if aspect == "size" else (WEAR_EN + ITEMS_EN if en else WEAR_ZH + ITEMS_ZH)
    phrase = rng.choice((PHRASES_EN if en else PHRASES_ZH)[(aspect, sentiment)].split("|"))
    body = phrase.format(p=rng.choice(products), i=rng.choice(INTENSIFIERS_EN if en else INTENSIFIERS_ZH))
    body = rng.choice(PREFIX_EN if en else PREFIX_ZH) + body
    body = body[0].upper() + body[1:] + ("." if en else "。")
    if rng.random() < 0.3 and en:
        body = body[:-1] + "!"
    parts = [body]
    if cue:
        parts.append(rng.choice((CUES_EN if en else CUES_ZH)[cue]))
    if rng.random() < 0.2:
        parts.append(rng.choice(STARS[language][sentiment]))
    if rng.random() < 0.12:
        parts.append(rng.choice(EMOJI[sentiment]))
    text = (" " if en else "").join(parts)
    return typo(rng, text, language) if rng.random() < 0.06 else text


def make_record(rng: random.Random, i: int, language: str) -> dict:
    """One clean review with its JSON answer."""
    aspect = rng.choices(ASPECTS, ASPECT_WEIGHTS)[0]
    sentiment = rng.choices(SENTIMENTS, SENTIMENT_WEIGHTS)[0]
    recommend, cue = recommendation(rng, sentiment)
    text = review_text(rng, language, aspect, sentiment, cue)
    answer = json.dumps({"sentiment": sentiment, "aspect": aspect, "recommend": recommend}, ensure_ascii=False)
    return {
        "id": f"r{i:04d}",
        "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}, {"role": "assistant", "content": answer}],
        "language": language, "aspect": aspect,
    }


def with_user(record: dict, user: str, answer: str | None = None, suffix: str = "") -> str:
    """The record as a JSON line with its user text (and optionally its answer and id) replaced."""
    messages = [record["messages"][0], {"role": "user", "content": user},
                {"role": "assistant", "content": record["messages"][2]["content"] if answer is None else answer}]
    return json.dumps({**record, "id": record["id"] + suffix, "messages": messages}, ensure_ascii=False)


def dirty(rng: random.Random, records: list[dict]) -> list[str]:
    """Add what real exports contain: duplicates, near-duplicates, conflicts, empty answers, broken whitespace, bad lines."""
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    for r in rng.sample(records, 10):  # exact duplicates under a new id
        lines.append(json.dumps({**r, "id": r["id"] + "-dup"}, ensure_ascii=False))
    for r in rng.sample(records, 10):  # near duplicates: other punctuation and an extra word
        user = r["messages"][1]["content"]
        near = user.replace(".", "!!", 1) + " Thanks" if r["language"] == "en" else user.replace("。", "！", 1) + "谢谢"
        lines.append(with_user(r, near, suffix="-near"))
    flip = {"positive": "neutral", "neutral": "negative", "negative": "neutral"}
    for r in rng.sample(records, 3):  # conflicting duplicates: same review, another annotator's sentiment
        answer = json.loads(r["messages"][2]["content"])
        answer["sentiment"] = flip[answer["sentiment"]]
        lines.append(with_user(r, r["messages"][1]["content"], json.dumps(answer, ensure_ascii=False), "-conflict"))
    for r in rng.sample(records, 5):  # empty answers
        lines.append(with_user(r, r["messages"][1]["content"], "  ", "-empty"))
    for r in rng.sample(records, 20):  # broken whitespace and HTML remnants from the shop's web form (cleaned, not removed)
        user = r["messages"][1]["content"]
        messy = "  " + user.replace(" ", "   ", 2).replace(",", " ,").replace("，", "&nbsp;，", 1) + "<br>\t"
        lines[records.index(r)] = with_user(r, messy)
    lines.append('{"id": "r9998", "messages": [{"role": "user", "content": "truncated export')  # malformed line
    lines.append(json.dumps({"id": "r9999", "messages": [{"role": "customer", "content": "wrong role"}, {"role": "assistant", "content": "{}"}]}))
    rng.shuffle(lines)
    return lines


def main() -> None:
    rng = random.Random(11)
    records = [make_record(rng, i, "en" if i % 5 < 3 else "zh") for i in range(320)]
    lines = dirty(rng, records)
    out = Path(__file__).with_name("reviews.jsonl")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} lines to {out}")


if __name__ == "__main__":
    main()
