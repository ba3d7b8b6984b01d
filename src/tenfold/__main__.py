from tenfold.cli import main_entry

main_entry()
