"""Built-in English phrasings of the common attributes.

Keys use a small notation, read by :func:`chatface.plugins.rule_planner.vocabulary.parse_target`:
``"smile"`` means "more smile", ``"-age"`` "less age" (younger), ``"~beard"`` a
removal (back to neutral when the state has some), ``"stubble|beard"`` the first
of these attributes that is registered, ``"smile@0.25"`` an inherent magnitude.
Targets that name no registered attribute are skipped, so this table never makes
the planner produce an attribute that no provider declared.

Attribute names, aliases and description phrases of the registered providers are
added on top of this table by the vocabulary, and win over it.
"""

from __future__ import annotations

SYNONYMS: dict[str, tuple[str, ...]] = {
    # expression
    "smile": (
        "smile", "smiles", "smiling", "smiley", "smiley face", "grin", "grins", "grinning",
        "beam", "beams", "beaming", "happy", "happier", "happiest", "happy face", "cheerful",
        "joyful", "joy", "laugh", "laughs", "laughing", "glad", "toothy grin", "cheery",
        "jolly", "smily", "smilier", "smilling", "cheer up", "cheered up",
    ),
    "smile@0.25": ("smirk", "smirking", "half smile"),
    "-smile": (
        "frown", "frowns", "frowning", "sad", "sadder", "saddest", "serious", "serious face",
        "serious expression", "neutral face", "neutral expression", "straight face",
        "poker face", "grumpy", "unhappy", "stern", "gloomy", "miserable", "upset", "sulky",
        "pout", "pouting", "expressionless", "solemn", "somber", "sombre", "sullen", "moody",
        "resting face", "deadpan", "melancholy", "depressed", "unsmiling", "unhappier",
    ),
    # age
    "age": (
        "old", "older", "oldest", "aged", "age", "aging", "ageing", "elderly", "senior",
        "wrinkles", "wrinkled", "wrinkly", "mature", "grandpa", "grandma", "grandfather",
        "grandmother", "granny", "grow old", "old age", "pensioner", "retired",
        "middle aged",
    ),
    "-age": (
        "young", "younger", "youngest", "youthful", "youth", "kid", "child", "baby",
        "baby face", "teen", "teenager", "teenage", "juvenile", "rejuvenate", "rejuvenated",
        "de age", "deage", "de aged", "less wrinkles", "fewer wrinkles",
        "no wrinkles", "childlike", "boyish", "girlish", "fresh faced",
    ),
    # facial hair
    "beard": (
        "beard", "beards", "bearded", "facial hair", "full beard", "whiskers", "lumberjack",
        "hipster beard",
    ),
    "~beard": (
        "clean shaven", "clean shave", "shaven", "shaved", "shave", "beardless",
        "freshly shaved", "shave face",
    ),
    "stubble|beard": (
        "stubble", "stubbly", "scruff", "scruffy", "designer stubble", "5 oclock shadow",
        "five oclock shadow", "oclock shadow",
    ),
    "mustache|beard": ("mustache", "moustache", "mustaches", "moustaches", "tache", "stache"),
    "goatee|beard": ("goatee", "goatees", "chin beard"),
    "sideburns": ("sideburns", "sideburn", "side burns", "mutton chops", "muttonchops"),
    # glasses
    "eyeglasses": (
        "glasses", "eyeglasses", "eyeglass", "eye glasses", "spectacles", "specs",
        "sunglasses", "sun glasses", "shades", "reading glasses", "eyewear", "goggles",
        "frames", "monocle", "nerd glasses",
    ),
    # hair colour
    "blond_hair": (
        "blond", "blonde", "blondes", "blond hair", "blonde hair", "blonder", "golden hair",
        "yellow hair", "platinum", "platinum blonde", "fair hair", "bleached", "bleach",
        "bleached hair", "lighter hair", "light hair", "goldilocks", "sandy hair",
    ),
    "black_hair": (
        "black hair", "dark hair", "darker hair", "jet black", "raven hair", "black",
        "raven", "black haired", "dark haired",
    ),
    "brown_hair": (
        "brown hair", "brunette", "brunet", "chestnut", "chestnut hair", "brown",
        "brown haired", "hazel hair", "auburn",
    ),
    "gray_hair": (
        "gray hair", "grey hair", "white hair", "silver hair", "gray", "grey", "silver",
        "white", "greying", "graying", "going gray", "going grey", "salt and pepper",
        "gray haired", "grey haired", "white haired", "silver haired", "grayer", "greyer",
    ),
    "bangs": ("bangs", "fringe", "a fringe", "fringes", "bang", "hair over forehead"),
    "wavy_hair": ("wavy", "wavy hair", "waves", "curly", "curly hair", "curls", "curlier"),
    "straight_hair": ("straight hair", "straighten", "straighten hair", "sleek hair"),
    "bald": (
        "bald", "balder", "baldness", "bald head", "shaved head", "shave head",
        "shaven head", "no hair", "hairless", "chrome dome", "cue ball",
    ),
    "-bald": ("full head of hair", "more hair", "thick hair", "hair back", "give hair",
              "add hair", "grow hair", "regrow hair", "with hair"),
    "receding_hairline": ("receding", "receding hairline", "hairline", "balding"),
    # make-up and skin
    "makeup": (
        "makeup", "make up", "makeups", "heavy makeup", "cosmetics", "glam", "full glam",
        "mascara", "eyeliner", "eye liner", "eyeshadow", "eye shadow", "made up",
        "dolled up", "foundation", "maquillage",
    ),
    "-makeup": ("natural look", "bare face", "barefaced", "bare faced", "makeup free"),
    "lipstick": (
        "lipstick", "lipsticks", "lip stick", "red lips", "lip color", "lip colour",
        "lip gloss", "lipgloss", "red lipstick", "lippy", "painted lips", "lip tint",
    ),
    "pale_skin": (
        "pale", "paler", "palest", "pale skin", "fair skin", "fairer skin", "lighter skin",
        "light skin", "porcelain skin", "porcelain", "pallid", "pasty", "fair", "fairer",
    ),
    "-pale_skin": (
        "tan", "tanned", "tanning", "suntan", "suntanned", "sun tan", "sun tanned",
        "bronzed", "darker skin", "dark skin", "tan skin", "sunkissed", "sun kissed",
    ),
    "rosy_cheeks": (
        "rosy", "rosy cheeks", "blush", "blushing", "blushes", "red cheeks", "pink cheeks",
        "flushed", "rosier",
    ),
    # face shape
    "chubby": (
        "chubby", "chubbier", "fat", "fatter", "plump", "plumper", "round face",
        "rounder face", "gain weight", "heavier", "overweight", "chunky", "puffy face",
        "more weight", "put on weight", "weight gain", "rounder",
        "chubby cheeks",
    ),
    "-chubby": (
        "slim", "slimmer", "thin", "thinner", "skinny", "skinnier", "lean", "leaner",
        "lose weight", "slim down", "thinner face", "slimmer face", "gaunt", "thin face",
        "slender", "less weight",
    ),
    "double_chin": ("double chin", "jowls", "double chins"),
    "oval_face": ("oval face", "oval", "oval shaped"),
    "high_cheekbones": ("cheekbones", "high cheekbones", "chiseled", "chiselled"),
    "mouth_open": (
        "open mouth", "mouth open", "open his mouth", "open her mouth", "open mouthed",
        "gaping", "parted lips", "agape",
    ),
    "-mouth_open": ("close mouth", "closed mouth", "shut mouth", "mouth closed", "mouth shut"),
    "narrow_eyes": ("narrow eyes", "squint", "squinting", "squinty", "narrower eyes"),
    "-narrow_eyes": ("wide eyes", "wider eyes", "wide eyed", "open eyes", "bigger eyes"),
    "big_lips": (
        "big lips", "full lips", "fuller lips", "plump lips", "bigger lips", "thick lips",
        "thicker lips", "lips", "plumper lips",
    ),
    "-big_lips": ("thin lips", "thinner lips", "smaller lips", "small lips"),
    "big_nose": ("big nose", "large nose", "bigger nose", "nose", "larger nose"),
    "-big_nose": (
        "small nose", "smaller nose", "little nose", "tiny nose", "button nose",
        "shorter nose",
    ),
    "pointy_nose": ("pointy nose", "pointed nose", "sharp nose", "pointier nose"),
    "bushy_eyebrows": (
        "bushy eyebrows", "thick eyebrows", "thicker eyebrows", "bushy brows",
        "bushier eyebrows", "heavy brows", "unibrow",
    ),
    "-bushy_eyebrows": ("thin eyebrows", "thinner eyebrows", "plucked eyebrows"),
    "arched_eyebrows": ("arched eyebrows", "arched brows", "arched", "arch eyebrows"),
    "bags_under_eyes": (
        "eye bags", "bags under eyes", "bags under his eyes", "tired", "tired eyes",
        "dark circles", "puffy eyes", "baggy eyes", "under eye bags",
    ),
    "-bags_under_eyes": ("well rested", "rested", "refreshed", "fresh eyes"),
    # gender look
    "male": (
        "masculine", "manly", "male", "more male", "macho", "man", "gentleman", "boy",
        "manlier",
    ),
    "-male": (
        "feminine", "female", "womanly", "woman", "girl", "lady", "femme",
        "girly", "ladylike",
    ),
    # overall look
    "attractive": (
        "attractive", "beautiful", "handsome", "good looking", "prettier", "cute",
        "cuter", "gorgeous", "hotter", "sexier", "pretty", "lovely", "stunning",
        "more attractive", "better looking",
    ),
    "-attractive": ("ugly", "uglier", "unattractive", "plain looking", "homely"),
    "blurry": ("blurry", "blur", "blurred", "blurrier", "out of focus", "soft focus", "fuzzy"),
    "-blurry": ("sharpen", "sharper", "deblur", "unblur", "in focus", "crisp", "crisper"),
    # accessories
    "earrings": ("earrings", "earring", "ear rings", "piercings", "studs", "hoops"),
    "hat": ("hat", "hats", "cap", "beanie", "baseball cap", "fedora", "cowboy hat", "helmet"),
    "necklace": ("necklace", "necklaces", "chain", "pendant", "choker", "pearls"),
    "necktie": ("tie", "necktie", "neck tie", "bow tie", "bowtie", "cravat"),
}  # fmt: skip

# Gender nouns also name the person being edited ("make this man older"), so they
# only count when nothing else in the message names an attribute.
WEAK_WORDS: frozenset[str] = frozenset({"man", "gentleman", "boy", "woman", "girl", "lady"})

# Words that are attributes on their own but modifiers in front of another one:
# "pretty old" is an intensity, "thinner beard" a reduction.
ADJECTIVE_MODIFIERS: dict[str, str] = {
    "pretty": "intensity:0.65",
    "shave": "remove",
    "shaved": "remove",
    "shaven": "remove",
    "thinner": "reduce",
    "slimmer": "reduce",
    "thin": "reduce",
    "fuller": "more",
    "heavier": "more",
}

# Emoji read as words before parsing.
EMOJI: dict[str, str] = {
    "😀": " smile ", "😃": " smile ", "😄": " smile ", "😁": " big grin ", "😊": " smile ",
    "🙂": " smile ", "😆": " laugh ", "😂": " laugh ", "🤣": " laugh ", "😐": " neutral face ",
    "😑": " neutral face ", "🙁": " frown ", "☹": " frown ", "😞": " sad ", "😢": " sad ",
    "👓": " glasses ", "🕶": " sunglasses ", "🧔": " beard ", "👴": " older ", "👵": " older ",
    "👶": " younger ", "💄": " lipstick ", "💋": " lipstick ", "🎩": " hat ", "🧢": " cap ",
    "👒": " hat ", "👨\u200d🦲": " bald ", "🧑\u200d🦲": " bald ", "👱": " blond ",
    "👍": " ok ", "👌": " ok ", "🙏": " thanks ", "❤": " nice ", "😍": " nice ",
    "➕": " more ", "➖": " less ", "↩": " undo ", "🔄": " reset ",
}  # fmt: skip

# Concepts we cannot edit, and the attributes worth suggesting instead.
NEAR_MISSES: dict[str, tuple[str, ...]] = {
    "red": ("blond_hair", "brown_hair", "black_hair", "gray_hair", "lipstick"),
    "ginger": ("blond_hair", "brown_hair", "black_hair", "gray_hair"),
    "redhead": ("blond_hair", "brown_hair", "black_hair", "gray_hair"),
    "pink": ("blond_hair", "lipstick", "rosy_cheeks"),
    "purple": ("blond_hair", "brown_hair", "black_hair", "gray_hair"),
    "blue": ("blond_hair", "black_hair", "narrow_eyes", "eyeglasses"),
    "green": ("blond_hair", "black_hair", "narrow_eyes"),
    "dye": ("blond_hair", "brown_hair", "black_hair", "gray_hair"),
    "hair": ("blond_hair", "black_hair", "brown_hair", "gray_hair", "wavy_hair", "bald"),
    "haircut": ("bangs", "bald", "wavy_hair", "straight_hair"),
    "long": ("bangs", "wavy_hair", "straight_hair", "bald"),
    "short": ("bangs", "bald", "receding_hairline"),
    "afro": ("wavy_hair", "black_hair"),
    "mohawk": ("bald", "bangs"),
    "eyes": ("narrow_eyes", "bags_under_eyes", "eyeglasses"),
    "eye": ("narrow_eyes", "bags_under_eyes", "eyeglasses"),
    "eyebrows": ("bushy_eyebrows", "arched_eyebrows"),
    "brows": ("bushy_eyebrows", "arched_eyebrows"),
    "teeth": ("smile", "mouth_open"),
    "angry": ("smile",),
    "surprised": ("smile", "mouth_open"),
    "shocked": ("mouth_open", "smile"),
    "scared": ("smile", "mouth_open"),
    "cry": ("smile",),
    "crying": ("smile",),
    "skin": ("pale_skin", "rosy_cheeks"),
    "weight": ("chubby", "double_chin"),
    "gender": ("male",),
    "face": ("chubby", "oval_face", "smile", "age"),
    "tattoo": ("makeup",),
    "freckles": ("makeup", "rosy_cheeks", "pale_skin"),
    "jewelry": ("earrings", "necklace"),
    "jewellery": ("earrings", "necklace"),
    "cat": (),
    "dog": (),
}
