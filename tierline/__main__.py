from tierline.cli import app

app(prog_name="tierline")
