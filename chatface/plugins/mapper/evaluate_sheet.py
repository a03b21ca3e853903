"""The contact sheet of an evaluation: one row per face, the aligned photo crop, then
one column per strength, each edit labelled with its strength and identity similarity."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from chatface.plugins.mapper.evaluate import Evaluation

MIN_CELL = 128  # smaller crops (the tiny backend's 64 px) are enlarged to stay legible
LABEL_PX = 18
BACKGROUND, INK = (255, 255, 255), (20, 20, 20)


def contact_sheet(evaluation: Evaluation) -> Image.Image:
    """Columns: the photo crop, then each strength; the title names what was evaluated."""
    from chatface.engine.photos import to_image

    crops = [to_image(crop) for crop in evaluation.faces.crops]
    cell = max(MIN_CELL, crops[0].width)
    columns = 1 + len(evaluation.results)
    width, row = columns * cell, cell + LABEL_PX
    sheet = Image.new("RGB", (width, LABEL_PX + len(crops) * row), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=12)
    plan = evaluation.plan
    title = f"{plan.attribute} - {plan.method} - {evaluation.schedule}, {evaluation.steps} steps"
    draw.text((4, 2), title, fill=INK, font=font)
    for index, (name, crop) in enumerate(zip(evaluation.faces.names, crops, strict=True)):
        top = LABEL_PX + index * row
        cells = [(crop, name)]
        for result in evaluation.results:
            identity = result.faces[index]["identity"]
            cells.append((result.images[index], f"{result.strength:+.2f}  id {identity:.3f}"))
        for column, (image, label) in enumerate(cells):
            left = column * cell
            sheet.paste(image.resize((cell, cell), Image.Resampling.LANCZOS), (left, top))
            draw.text((left + 3, top + cell + 2), _fit(draw, label, font, cell - 6), fill=INK,
                      font=font)  # fmt: skip
    return sheet


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
         width: int) -> str:  # fmt: skip
    """``text``, shortened with an ellipsis until it fits ``width`` pixels."""
    while len(text) > 1 and draw.textlength(text, font=font) > width:
        text = text[:-2] + "…"
    return text
