"""Everything the web page (app.py) needs: the handlers behind its buttons and the /generate API
(`handlers.py`), which checkpoint it serves (`serving.py`), input checks (`inputs.py`), drawing
styles (`styles.py`), the inline frames and schedule plot (`live_view.py`), the API's images
(`api_images.py`), frame pacing (`pacing.py`) and the status line (`status.py`)."""
