"""English words that are not attributes: intensities, negations, commands, speed.

Each table maps a kind of word to its phrasings. Phrases are written as a user
would type them; the vocabulary normalises them exactly like messages (lower
case, fillers such as "the" or "it" dropped), so "tone it down" is stored as
("tone", "down") and matches "Tone it down!" as well as "tone down".
"""

from __future__ import annotations

from chatface.plugins.rule_planner.lexemes import word_set

# Magnitudes from the plan contract: "a little" 0.25, plain 0.5, "very" 0.8, "max" 1.0.
INTENSITIES: dict[float, tuple[str, ...]] = {
    0.15: ("tiny bit", "tiny little bit", "barely", "teeny bit", "smidge", "smidgen", "tiny"),
    0.25: (
        "little", "little bit", "bit", "slightly", "slight", "tad", "touch", "hint", "subtle",
        "subtly", "gently", "gentle", "mild", "mildly", "light", "lightly", "soft", "softly",
        "marginally", "small", "faint", "faintly", "bit of", "touch of", "hint of", "wee bit",
        "nudge", "notch", "little more", "bit more",
    ),
    0.35: ("somewhat", "kind of", "kinda", "sort of", "sorta", "partly", "partially",
           "not too much", "not too", "not too many", "not overly", "not too far"),
    0.5: ("moderately", "moderate", "medium", "normal", "half", "halfway", "regular"),
    0.65: ("quite", "rather", "fairly", "noticeably", "clearly", "visibly"),
    0.8: (
        "very", "much", "lot", "lots", "way", "far", "really", "strongly", "strong",
        "heavily", "big", "huge", "large", "massive", "tons", "ton", "loads", "plenty",
        "significantly", "considerably", "substantially", "dramatically", "seriously",
        "super", "intense", "intensely", "deep", "deeply", "wide", "broad", "hugely",
        "majorly", "heavy", "full", "bold", "obvious", "obviously", "whole lot", "so much",
        "lot more", "much more", "way more", "far more", "twice",
        "strongest", "bigger", "noticeable",
    ),
    1.0: (
        "extremely", "max", "maximum", "maximal", "maximally", "maxed", "fully",
        "completely", "totally", "entirely", "all way", "possible", "utterly", "absolutely",
        "insanely", "incredibly", "ridiculously", "hundred percent", "most", "max out",
        "to max", "to maximum", "100 percent", "as much as possible", "extreme", "ultra",
    ),
}  # fmt: skip
# "bigger" is both "more" and a size word; as a plain comparative it means "more".
INTENSITIES[0.8] = tuple(w for w in INTENSITIES[0.8] if w != "bigger")

# Intensity words that are adjectives: a list "big smile and glasses" does not
# hand them on to the next item, while adverbs ("slightly older and blonde") do.
ADJECTIVE_INTENSITIES: frozenset[str] = word_set(
    "big huge large massive wide broad heavy strong small slight subtle faint light soft "
    "gentle mild deep intense full tiny bold"
)

MORE: tuple[str, ...] = (
    "more", "extra", "stronger", "strengthen", "increase", "increased", "bigger", "larger",
    "boost", "amplify", "intensify", "enhance", "enhanced", "thicker", "deeper",
    "further", "again", "once more", "keep going", "up", "crank up", "turn up",
    "ramp up", "pump up", "dial up", "bump up", "additional", "exaggerate", "emphasize",
    "emphasise", "accentuate", "higher", "fuller", "grow", "double", "harder", "darker",
    "stronger please", "same again", "push", "go further", "more more", "louder",
    "intensified", "increasing", "denser", "bolder", "brighter", "do again", "longer",
)  # fmt: skip

REDUCE: tuple[str, ...] = (
    "less", "lesser", "fewer", "reduce", "reduced", "decrease", "decreased", "lower",
    "minus", "weaker", "weaken", "smaller", "softer", "soften", "subtler", "more subtle",
    "more natural", "tone down", "toning down", "tone", "dial down", "dial back",
    "turn down", "scale back", "back off", "calm down", "lessen", "diminish", "fade",
    "down", "shrink", "cut back", "not so much", "not as much", "not that much",
    "lighter", "lighten", "thinner", "milder", "reducing", "decreasing", "toned down",
    "trim", "trimmed", "shorter", "shorten", "smaller please",
    "weakened", "tame", "calmer", "down notch", "notch down", "slighter",
)  # fmt: skip

REMOVE: tuple[str, ...] = (
    "no", "not", "non", "without", "dont", "do not", "doesnt", "does not", "isnt", "arent",
    "stop", "remove", "removed", "removing", "delete", "erase", "eliminate", "drop",
    "lose", "get rid", "take off", "take away", "take out", "off", "away", "gone",
    "strip", "never", "no more", "ditch", "nix", "kill", "wipe", "wipe off", "hide",
    "free", "neither", "nor", "sans", "none", "not anymore", "anymore",
    "dont want", "no longer", "unwanted", "cut", "cut off", "shave off", "shave",
    "shouldnt", "wouldnt", "wont", "didnt", "dont need", "dont like", "hate", "fix",
    "cover", "conceal", "cover up", "needs to go", "has to go", "must go",
    "gotta go", "go away", "un",
    "rid",
)  # fmt: skip
# Commands that act as removals when the message names an attribute ("undo the smile",
# "remove all the make-up"), recognised by one of these words in the command phrase.
COMMAND_REMOVALS: frozenset[str] = frozenset(
    {"undo", "revert", "reset", "clear", "cancel", "remove", "wipe", "delete"}
)

REQUEST: tuple[str, ...] = (
    "add", "adding", "give", "put", "make", "apply", "wear", "wearing", "turn", "change",
    "want", "need", "like", "get", "have", "how about", "what about", "try",
    "show", "grow", "create", "transform", "convert", "would like", "id like", "wish",
    "become", "into", "gimme", "go",
)  # fmt: skip

# "too" before a word means excess ("too old" -> younger); at the end it means "also".
TOO: tuple[str, ...] = (
    "too", "too much", "too many", "too strong", "too intense", "too heavy", "too thick",
    "too big", "too dark", "too far", "over top", "overdone", "excessive", "overkill",
    "overly", "excessively", "way too", "too extreme", "much too", "exaggerated",
)  # fmt: skip
NOT_ENOUGH: tuple[str, ...] = (
    "not enough", "too little", "too subtle", "too weak", "too faint", "too light",
    "too small", "barely visible", "hardly", "cant see", "cannot see", "more visible",
    "insufficient", "too soft", "too mild", "isnt enough", "needs more", "need more",
    "barely see", "hardly see", "can barely see", "not visible", "invisible",
)  # fmt: skip
FLIP: tuple[str, ...] = (
    "other way", "opposite", "reverse", "reversed", "other direction", "opposite direction",
    "flip", "invert", "other way around", "wrong way", "wrong direction", "backwards",
    "vice versa", "inverse",
)  # fmt: skip

# "keep the beard", "leave the glasses": that attribute is not edited.
KEEP: tuple[str, ...] = (
    "keep", "leave", "preserve", "dont change", "dont touch", "except", "unchanged",
    "stay", "stays", "same", "untouched", "retain", "maintain",
)  # fmt: skip
JOIN: tuple[str, ...] = ("and", "or", "plus", "also", "then", "but", "while", "as well as",
                         "additionally", "in addition", "&", "nor", "both")  # fmt: skip
WITH: tuple[str, ...] = ("with", "along with", "together with", "featuring")
WITHOUT: tuple[str, ...] = ("without", "sans", "minus")
STOPS: frozenset[str] = frozenset({".", "!", "?", ";", ":", "\n", "。"})
SET_WORDS: tuple[str, ...] = ("set", "exactly", "equal", "=")
# Phrases that carry no meaning for a plan ("if possible" is not "max").
NEUTRAL: tuple[str, ...] = ("if possible", "where possible", "when possible", "if can")
SET_PREPOSITIONS: frozenset[str] = frozenset({"to", "at", "="})

STEPS: dict[int, tuple[str, ...]] = {
    4: (
        "quick", "quickly", "fast", "faster", "quick preview", "preview", "draft",
        "rough", "rough draft", "low quality", "lower quality", "speed", "hurry", "rapid",
        "quick look", "fast preview", "quick render", "low res", "lowres", "sketch",
    ),
    50: (
        "best quality", "high quality", "higher quality", "highest quality",
        "max quality", "maximum quality", "top quality", "hq", "hi res", "high res",
        "high resolution", "hires", "detailed", "more detail", "more detailed",
        "more details", "fine detail", "fine details", "full quality", "slow",
        "take time", "better quality", "good quality", "quality", "best possible",
        "highest detail", "high detail", "final render", "final", "ultra quality",
        "detail", "details", "4k", "hd",
    ),
}  # fmt: skip
STEP_WORDS: tuple[str, ...] = ("steps", "step", "iterations", "sampling steps", "ddim steps")
YEAR_WORDS: tuple[str, ...] = ("years", "year", "yrs", "yr", "y o")

COMMANDS: dict[str, tuple[str, ...]] = {
    "undo": (
        "undo", "undo last", "undo last edit", "undo last change", "undo change", "go back",
        "step back", "revert", "take back", "back", "ctrl z", "previous version",
        "last version", "cancel", "cancel last", "oops", "whoops", "revert last",
        "go back one", "back one step", "one step back", "undo edit", "undo last one",
        "remove last edit", "undo last step", "previous one", "take back last",
        "go back to previous", "back to previous", "previous step",
    ),
    "redo": ("redo", "redo last", "ctrl y", "step forward", "go forward", "redo edit",
             "redo last edit", "redo change", "forward", "restore last"),
    "reset": (
        "reset", "start over", "start again", "start from scratch", "from scratch",
        "begin again", "restart", "original settings", "clear", "clear all", "clear everything",
        "remove everything", "remove all", "remove all edits", "undo everything",
        "undo all", "reset all", "reset everything", "back to original", "back to start",
        "go back to original", "revert all", "revert everything", "default",
        "defaults", "default settings", "clean slate", "wipe all", "remove all changes",
        "undo all changes", "clear edits", "clear all edits", "reset edits", "new start",
        "back to beginning", "revert to original", "return to original", "restore",
        "restore original", "restore everything",
    ),
    "show_original": (
        "show original", "original", "see original", "view original", "original photo",
        "original picture", "original image", "compare", "before", "before after",
        "show before", "show unedited", "unedited", "what looked like before",
        "original face", "show original photo", "show original image", "how looked before",
        "looked like before", "original version", "without edits", "without changes",
        "show without edits", "display original",
    ),
    "help": (
        "help", "what can do", "what do", "how does work", "how work", "how use",
        "how do use", "how do work", "commands", "instructions", "usage", "manual", "start",
        "info", "guide", "how to use", "what are commands", "what do do", "what can help",
        "how does this work", "tutorial", "explain", "how this works", "help me",
    ),
    "list_attributes": (
        "list attributes", "attributes", "list", "what can change", "what change",
        "which attributes", "options", "what options", "available attributes",
        "show attributes", "list edits", "what edits", "features", "what attributes",
        "what can edit", "what can make", "available", "what can modify",
        "which features", "what features", "list options", "list features",
        "what attributes are there", "attribute list", "show options", "what else",
        "what are options", "what can adjust", "which edits", "supported attributes",
        "all attributes", "what are attributes",
    ),
}  # fmt: skip
SLASH_COMMANDS: dict[str, str] = {
    "undo": "undo", "redo": "redo", "reset": "reset", "start": "help", "help": "help",
    "attributes": "list_attributes", "attrs": "list_attributes", "list": "list_attributes",
    "original": "show_original", "show_original": "show_original", "orig": "show_original",
    "back": "undo", "restart": "reset", "commands": "help",
}  # fmt: skip

CHAT: dict[str, tuple[str, ...]] = {
    "greeting": ("hi", "hello", "hey", "yo", "hiya", "howdy", "good morning",
                 "good evening", "good afternoon", "greetings", "sup", "hallo", "hola"),
    "thanks": ("thanks", "thank", "thx", "ty", "cheers", "thank you", "thanks lot",
               "many thanks", "appreciate"),
    "praise": ("nice", "great", "cool", "awesome", "perfect", "good", "looks good",
               "looking good", "love", "wow", "amazing", "lol", "haha", "excellent",
               "beautiful work", "well done", "brilliant", "fantastic", "neat"),
    "ack": ("ok", "okay", "sure", "yes", "yeah", "yep", "fine", "alright", "k", "got"),
    "no": ("nope", "nah"),
    "bye": ("bye", "goodbye", "see you later", "see ya", "cya", "ciao", "good night"),
}  # fmt: skip

# Words dropped before matching: articles, pronouns, politeness, copulas.
FILLERS: frozenset[str] = word_set(
    """a an the his her hers my mine their theirs its it this that these those him me them
    us our ours your yours i im id ill ive you youre he she hes shes we they theyre please
    pls plz kindly just now some of be is are am was were been being can could would will
    should even for in on one any there here so let lets bunch person photo picture image
    pic someone somebody lil thats theres heres itll youll theyd youd youve weve theyve
    hed"""
)
QUESTION_WORDS: frozenset[str] = word_set(
    "is are does do did was were why who where when which what whats how has have will "
    "would should could can am isnt arent doesnt"
)
# Words that make a question a request ("can you add glasses?").
REQUEST_VERBS: frozenset[str] = word_set(
    "add give put make apply wear turn change remove take get set increase reduce "
    "decrease want transform convert shave dye grow lose"
)
# Determiners that turn a gender noun into a reference ("the man" vs "a man").
DETERMINERS: frozenset[str] = word_set("the this that these those my his her our their your")

# Common words never "corrected" to a vocabulary word by the typo tolerance, and never
# reported as "unknown" (so "ignore the weather" is small talk, not an unknown edit).
COMMON_WORDS: frozenset[str] = word_set(
    """about above across after again against all almost along already also although
    always among and another any anyone anything around ask asked back bad be because
    become been before behind being below best better between big black blue both bring
    but buy by call came can cant car case cat change child city close cold come could
    day did different do does dog done dont door down during each early easy either else
    end enough even ever every eye eyes fact family far feel felt few find first five
    for four friend from front full fun game gave get give given go goes going gone good
    got great group had hair half hand hard has have he head hear heard help her here
    high him his hold home hope hot hour house how idea if important in inside into is
    it its job just keep kind knew know large last late later least left less let life
    like line little live long look looks lost lot love made main make makes making man
    many may maybe me mean men might mind mine miss moment money month more morning most
    mother move much must my name near need never new next nice night no none nor not
    nothing now number of off often old on once one only open or other our out over own
    part people photo picture place plan play point pretty put question quite rather
    read real really red right room run said same saw say school see seem seen set
    several shall she short should show side since small so some something sometimes
    soon sorry start state still stop story such sure take taken talk tell than thank
    that the their them then there these they thing things think this those though
    three through time to today together told too took toward try turn two under until
    up upon us use used very want was watch water way we weather week well went were
    what when where whether which while white who whole whom whose why will with within
    without word words work world would write wrong year years yes yet you young your
    looking looked appear appears seem seems edit edits editing edited modify adjust
    tweak selfie version result render style support supported supports available
    possible option stuff dude guy guys bold ball band bale mole hole pole sale tale
    male fake lake cake role rule rose nose note vote wore core fire hire wire tire file
    mile pile tile mail nail tail wait hate late mate rate date fate gate race face tea
    thin tie ties glass class grass mass pass gas hat bat fat mat gold fold sold mold
    chat shame shake share spare stare scare smell smart leather feather"""
)
